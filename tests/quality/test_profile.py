"""The load profile, fingerprints and sensitive-data handling, through real loads on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import statistics
from typing import ClassVar

import pytest

from backend.errors import ValidationFailedError
from backend.models import TypePolicy
from backend.quality.describe import build_profile
from backend.quality.profile import DISTINCT_EXACT, ProfileObserver
from tests.support import export_rows, make_settings, run_cli

AMOUNTS = ["10.50", "20.25", "", "99.99", "0.01", "15.00"]
ROWS = [
    ["code", "amount", "qty", "day", "flag", "note", "ref"],
    *[
        [code, amount, str(qty), f"2024-0{m}-1{m}", flag, note, f"{letters}-{qty:03d}"]
        for code, amount, qty, m, flag, note, letters in zip(
            ["EUR", "USD", "EUR", "GBP", "EUR", "USD"],
            AMOUNTS,
            [1, 2, 3, 40, 5, 600],
            [1, 2, 3, 4, 5, 6],
            ["yes", "no", "yes", "yes", "no", "yes"],
            ["a", "", "", "long note", "b", "c"],
            ["ABC", "DEF", "GHI", "JKL", "MNO", "PQR"],
            strict=True,
        )
    ],
]


def column(profile: dict, name: str) -> dict:
    return next(c for c in profile["columns"] if c["name"] == name)


@pytest.fixture
def infer(env):
    env.settings = make_settings(env.tmp, env.settings.url, type_policy=TypePolicy.INFER)
    return env


class TestStatistics:
    def test_numbers_get_min_max_mean_and_stddev(self, infer):
        """Decimal and integer columns report numeric min, max, mean and sample standard deviation."""
        infer.load(infer.csv("sales.csv", ROWS))
        profile = infer.profile()
        amount = column(profile, "amount")
        values = [float(a) for a in AMOUNTS if a]
        assert (amount["type"], amount["nulls"], amount["min"], amount["max"]) == ("decimal", 1, 0.01, 99.99)
        assert amount["mean"] == pytest.approx(statistics.mean(values), rel=1e-6)
        assert amount["stddev"] == pytest.approx(statistics.stdev(values), rel=1e-5)
        qty = column(profile, "qty")
        assert (qty["type"], qty["min"], qty["max"], qty["distinct"]) == ("integer", 1, 600, 6)
        assert qty["mean"] == pytest.approx(651 / 6, rel=1e-6)

    def test_text_columns_get_counts_top_values_length_and_pattern(self, infer):
        """Low-cardinality columns list their most frequent values; code columns get a pattern."""
        infer.load(infer.csv("sales.csv", ROWS))
        profile = infer.profile()
        code = column(profile, "code")
        assert (code["type"], code["distinct"], code["min"], code["max"]) == ("text", 3, "EUR", "USD")
        assert code["top"] == [["EUR", 3], ["USD", 2], ["GBP", 1]]
        assert code["pattern"] == "AAA"
        assert column(profile, "ref")["pattern"] == "AAA-999"
        note = column(profile, "note")
        assert (note["nulls"], note["max_length"], note.get("pattern")) == (2, 9, None)
        day = column(profile, "day")
        assert (day["type"], day["min"], day["max"]) == ("date", "2024-01-11", "2024-06-16")
        flag = column(profile, "flag")
        assert flag["type"] == "boolean" and "min" not in flag and flag["top"] == [["yes", 4], ["no", 2]]
        assert profile["rows"] == 6 and profile["sensitive"] == {}

    def test_text_policy_still_says_what_values_look_like(self, env):
        """Under TYPE_POLICY=text the profile keeps the stored type and adds what values look like."""
        env.load(env.csv("sales.csv", ROWS))
        qty = column(env.profile(), "qty")
        assert (qty["type"], qty["looks_like"], qty["max"]) == ("text", "integer", 600)
        code = column(env.profile(), "code")
        assert "looks_like" not in code and "mean" not in code

    def test_leading_zero_codes_keep_text_order(self, env):
        """Zero-padded codes are profiled as text (min '007'), not as numbers."""
        env.load(env.csv("zips.csv", [["zip"], ["007"], ["010"], ["100"]]))
        zip_code = column(env.profile(), "zip")
        assert (zip_code["min"], zip_code["max"], "mean" in zip_code) == ("007", "100", False)


class TestObserver:
    def test_distinct_is_exact_while_small_and_estimated_when_large(self):
        """Up to the exact limit the distinct count is exact; beyond it the estimate is within 10 %."""
        small, large = 3000, 200_000
        observer = ProfileObserver(2, exact_rows=large)
        for i in range(large):
            observer.observe([f"s{i % small}", f"value-{i}"])
        profile = build_profile(observer, ["s", "l"], observer.result())
        few, many = profile["columns"]
        assert (few["distinct"], "distinct_approximate" in few) == (small, False)
        assert many["distinct_approximate"] is True
        # k-minimum-values (k=2048) has ~2.2 % standard error and str hashes are salted per
        # process: 10 % (4.5 standard errors) keeps this from flaking.
        assert abs(many["distinct"] - large) / large < 0.10
        assert small < 2 * DISTINCT_EXACT < large

    def test_past_the_exact_rows_statistics_come_from_a_sample_and_say_so(self):
        """Beyond exact_rows only one row in sample_every is summarised; rows and NULLs stay exact."""
        observer = ProfileObserver(2, exact_rows=1000, sample_every=4)
        rows = 10 * 4096
        for i in range(rows):
            observer.observe([str(i), "" if i % 10 == 0 else "x"])
        profile = build_profile(observer, ["id", "flag"], observer.result())
        ident, flag = profile["columns"]
        assert profile["rows"] == rows
        # Rows are summarised in 4096-row flushes: the first is within exact_rows, so all of it
        # counts; of the nine after it, a random quarter.
        assert profile["sampled_rows"] == 4096 + 9 * 1024
        assert ident["from_sample"] is True and ident["distinct_approximate"] is True
        assert ident["distinct"] == pytest.approx(rows, rel=0.1)  # all new: scaled to the file
        assert flag["nulls"] == rows // 10
        ((value, count),) = flag["top"]  # a sampled value counts four times
        assert value == "x" and count == pytest.approx(rows * 0.9, rel=0.05)

    def test_below_the_exact_rows_nothing_is_sampled(self):
        """A file within exact_rows keeps exact figures and no sample marks."""
        observer = ProfileObserver(1, exact_rows=1000)
        for i in range(999):
            observer.observe([str(i)])
        profile = build_profile(observer, ["id"], observer.result())
        (ident,) = profile["columns"]
        assert "sampled_rows" not in profile and "from_sample" not in ident
        assert (ident["min"], ident["max"], ident["distinct"]) == (0, 998, 999)

    def test_stddev_stays_accurate_for_large_close_values(self):
        """Values around 1e9 with a spread of 1 give the right standard deviation (no cancellation)."""
        observer = ProfileObserver(1, exact_rows=30_000)
        values = [1_000_000_000 + (i % 3) for i in range(30_000)]
        for v in values:
            observer.observe([str(v)])
        (col,) = build_profile(observer, ["n"], observer.result())["columns"]
        assert col["stddev"] == pytest.approx(statistics.stdev(values), rel=1e-4)


class TestFingerprints:
    def test_profile_history_and_cli_show_structure_and_row_count_changes(self, sqlite_env, capsys):
        """A changed structure shows as a new fingerprint next to the previous one, in profile and history."""
        env = sqlite_env
        env.policy("codes", "schema_evolution: add_columns\n")
        env.load(env.csv("codes.csv", [["code"], ["A"], ["B"]]))
        first = env.profile()
        assert first["previous_fingerprint"] is None
        env.load(env.csv("codes.csv", [["code"], ["A"], ["B"], ["C"]]))
        second = env.profile()
        assert (second["fingerprint"], second["structure_changed"]) == (first["fingerprint"], False)
        env.load(env.csv("codes.csv", [["code", "label"], ["A", "x"]]))
        third = env.profile()
        assert third["previous_fingerprint"] == first["fingerprint"] and third["structure_changed"] is True
        url = ["--database-url", env.settings.url]
        capsys.readouterr()  # drop the loads' log lines
        code, out, _ = run_cli(["history", "codes", "--json", *url], capsys)
        assert code == 0
        latest, middle, oldest = json.loads(out)
        assert (latest["rows_change"], latest["structure_changed"]) == (-2, True)
        assert (middle["rows_change"], middle["structure_changed"]) == (1, False)
        assert oldest["rows_change"] is None
        assert (latest["columns_added"], latest["columns_removed"]) == (["label"], [])
        code, out, _ = run_cli(["history", "codes", *url], capsys)
        # The column's name, not a fingerprint: the operator must see what changed.
        assert "+label" in out and first["fingerprint"] not in out
        code, out, _ = run_cli(["profile", "codes", *url], capsys)
        assert code == 0 and "structure changed" in out and "label: text" in out
        code, out, _ = run_cli(["profile", "codes", "--load", "1", "--json", *url], capsys)
        assert json.loads(out)["profile"]["rows"] == 2
        code, _, err = run_cli(["profile", "nothing", *url], capsys)
        assert code == 1 and "no successful load of table nothing has a profile" in err
        code, _, err = run_cli(["profile", "codes", "--load", "99", *url], capsys)
        assert code == 1 and "no load 99 of table codes" in err


class TestSensitiveData:
    PEOPLE: ClassVar[list[list[str]]] = [
        ["name", "email", "phone", "card", "iban", "ssn"],
        [
            "Ann",
            "ann@example.com",
            "+49 30 1234567",
            "4111 1111 1111 1111",
            "DE89370400440532013000",
            "123-45-6789",
        ],
        [
            "Bob",
            "bob@example.org",
            "(555) 123-4567",
            "5500005555555559",
            "GB82WEST12345698765432",
            "234-56-7890",
        ],
    ]

    def test_columns_are_flagged_in_the_profile_and_the_audit_event_without_values(self, env):
        """E-mail, phone, card, IBAN and national id columns are flagged; their values stay out."""
        env.load(env.csv("people.csv", self.PEOPLE))
        profile = env.profile()
        assert profile["sensitive"] == {
            "email": "email",
            "phone": "phone",
            "card": "payment_card",
            "iban": "iban",
            "ssn": "national_id",
        }
        email = column(profile, "email")
        assert "min" not in email and "top" not in email and "pattern" not in email
        assert "ann@" not in json.dumps(profile)
        ((_, report),) = env.events("validated")
        assert report["sensitive"]["card"] == {"kind": "payment_card", "action": "flag"}

    def test_refuse_policy_stops_the_load(self, env):
        """sensitive.action refuse fails a load with flagged columns and publishes nothing."""
        env.policy("people", "sensitive:\n  action: refuse\n")
        with pytest.raises(ValidationFailedError, match=r"sensitive\(email\): column holds email"):
            env.load(env.csv("people.csv", self.PEOPLE))
        assert not env.has_table("people")

    def test_hash_and_mask_rewrite_values_before_publish(self, env):
        """hash stores SHA-256 hex of the value, mask keeps the last four characters, in ref and in bkp."""
        env.policy("people", "sensitive:\n  action: mask\n  columns: {email: hash, name: hash}\n")
        env.load(env.csv("people.csv", self.PEOPLE))
        env.load(env.csv("people.csv", self.PEOPLE))  # the first contents go to bkp
        expected_email = hashlib.sha256(b"ann@example.com").hexdigest()
        protected = [
            hashlib.sha256(b"Ann").hexdigest(),
            expected_email,
            "**********4567",
            "***************1111",
            "*******6789",
        ]
        row = env.rows("SELECT name, email, phone, card, ssn FROM ref.people ORDER BY _row_number")[0]
        assert list(row) == protected
        kept = export_rows(env.db, "people", version=1, sql_names=True)
        header = kept[0]
        assert [kept[1][header.index(c)] for c in ("name", "email", "phone", "card", "ssn")] == protected
        ((_, report),) = env.events("validated")
        assert report["sensitive"]["name"] == {"kind": "declared", "action": "hash"}
        assert "Ann" not in json.dumps(env.profile())

    def test_detection_can_be_switched_off(self, env):
        """sensitive.detect false leaves columns unflagged (e.g. a false positive)."""
        env.policy("people", "sensitive:\n  detect: false\n")
        env.load(env.csv("people.csv", self.PEOPLE))
        assert env.profile()["sensitive"] == {}
        assert export_rows(env.db, "people") == self.PEOPLE


class TestEmptyCountsFromTheStage:
    def test_an_observer_that_does_not_count_empty_cells_needs_them_from_the_caller(self):
        """With count_empty=False a sampled profile takes its NULL counts from the caller, exactly."""
        observer = ProfileObserver(2, exact_rows=100, sample_every=4, count_empty=False)
        rows = [[str(i), "" if i % 3 == 0 else "x"] for i in range(8192)]
        observer.observe_batch(rows[:100])  # within exact_rows
        observer.observe_batch(rows[100:])  # sampled
        assert observer.sampled
        with pytest.raises(ValueError, match="empty_counts"):
            build_profile(observer, ["id", "flag"], observer.result())
        profile = build_profile(observer, ["id", "flag"], observer.result(), empty_counts=[0, 2731])
        ident, flag = profile["columns"]
        assert (ident["nulls"], flag["nulls"]) == (0, 2731)
        assert profile["sampled_rows"] == 100 + 8092 // 4

    def test_lengths_and_empty_cells_are_counted_while_the_rows_are_written(self, env):
        """Column lengths (in characters) and empty counts of every row reach the profile."""
        header = ["a", "b", "c", "d", "e"]
        rows = [["x" * (i + 1), "", "é" * 3, "" if i % 2 else "y", "z"] for i in range(5)]
        env.load(env.csv("wide.csv", [header, *rows]))
        columns = env.profile()["columns"]
        assert [c["max_length"] for c in columns] == [5, 0, 3, 1, 1]
        assert [c["nulls"] for c in columns] == [0, 5, 0, 2, 0]
