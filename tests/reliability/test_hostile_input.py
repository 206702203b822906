"""Scenario 5: hostile and malformed input is refused with a clear reason or loaded safely, alone."""

from __future__ import annotations

import io
import os
import zipfile

import pytest
import sqlalchemy as sa

from backend.naming import table_name_from_file
from tests.reliability.support import IS_ROOT, Campaign, Drop, can_drop_privileges, sidecars

pytestmark = [pytest.mark.reliability, pytest.mark.daemon]

SCENARIO = "5 hostile input"
SQL_CELL = '\'); DELETE FROM ref."File_Monitor_Tracking"; --'


def csv_bytes(header: list[str], rows: list[list[str]]) -> bytes:
    import csv

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def zip_bytes(names: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in names.items():
            z.writestr(name, data)
    return buffer.getvalue()


def snapshot(c: Campaign) -> dict[str, tuple[int, str]]:
    """Row count and a checksum of every table in the database but the product's own tracking tables."""
    out = {}
    with c.db.engine.connect() as conn:
        tables = conn.execute(
            sa.text(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'"
            )
        ).all()
        for schema, name in tables:
            if name in ("File_Monitor_Tracking", "File_Monitor_Events"):
                continue
            quoted = f'"{schema}"."{name}"'
            count, digest = conn.execute(
                sa.text(
                    "SELECT COUNT(*), md5(COALESCE(string_agg(t::text, '|' ORDER BY t::text), '')) "
                    f"FROM {quoted} t"
                )
            ).one()
            out[f"{schema}.{name}"] = (int(count), str(digest))
    return out


def hostile_set(c: Campaign, scale: dict[str, int]) -> tuple[list[Drop], set[str]]:
    """Drop every hostile input; returns the drops and the tables they may create or change."""
    drops: list[Drop] = []
    tables: set[str] = set()

    def add(drop: Drop) -> None:
        drops.append(drop)
        c.share.hostile()
        if drop.expect in ("loaded", "final"):
            tables.add(table_name_from_file(drop.path.name, 63))

    # SQL-looking file, table and column names and cells: loaded as plain data under safe names.
    rows = [["1", SQL_CELL, "x"], ["2", "Robert'); DROP TABLE students;--", "y"]]
    header = ["id", 'name"; DROP TABLE ref."Reference_Data_Cfg"; --', "select"]
    add(
        c.drop_bytes(
            "ref",
            "append",
            "x'); DROP TABLE ref.File_Monitor_Tracking; --.csv",
            csv_bytes(header, rows),
            expect="loaded",
            rows=rows,
        )
    )
    # Names of 200+ characters (file name and column name).
    long_col = "c" * 250
    rows = [["v1", "v2"]]
    add(
        c.drop_bytes(
            "ref", "append", "t" * 220 + ".csv", csv_bytes(["id", long_col], rows), expect="loaded", rows=rows
        )
    )
    # Many columns: loads within PostgreSQL's 1,600-column limit, refused with the reason beyond it.
    wide = scale["columns"]
    header = [f"col{i}" for i in range(wide)]
    rows = [[f"{r}.{i}" for i in range(wide)] for r in range(3)]
    fits = wide <= 1600
    add(
        c.drop_bytes(
            "noref",
            "fullload",
            "wide.csv",
            csv_bytes(header, rows),
            expect="loaded" if fits else "error",
            rows=rows if fits else None,
        )
    )
    header = [f"col{i}" for i in range(2000)]
    add(
        c.drop_bytes(
            "noref",
            "fullload",
            "too_wide.csv",
            csv_bytes(header, [["v"] * 2000]),
            expect="error",
            reason="1600",
        )
    )
    # One enormous line: a single cell of several MB (100 MB with --soak).
    blob = "x" * scale["line_bytes"]
    add(
        c.drop_bytes(
            "noref",
            "append",
            "one_line.csv",
            f"id,blob\n1,{blob}\n".encode(),
            expect="final",
            rows=[["1", blob]],
        )
    )
    add(
        c.drop_bytes(
            "noref", "fullload", "no_newline.csv", blob.encode(), expect="error", reason="no line break"
        )
    )
    # NUL bytes and invalid UTF-8 deep in a large file.
    add(
        c.drop_bytes("ref", "fullload", "nul.csv", b"a,b\n1,x\x00y\n2,z\n", expect="error", reason="NUL byte")
    )
    good = "".join(f"{i},caf\u00e9 {i:08d}\n" for i in range(scale["utf8_rows"])).encode()
    bad = good[: len(good) * 3 // 4] + b"\xff\xfe broken\n" + good[len(good) * 3 // 4 :]
    add(
        c.drop_bytes(
            "ref", "fullload", "bad_utf8.csv", b"id,name\n" + bad, expect="error", reason="cannot be decoded"
        )
    )
    # Archives renamed .csv: the content decides (issue 17). A zip of one CSV loads that CSV; a
    # workbook package without a readable workbook part is refused as a damaged workbook.
    add(
        c.drop_bytes(
            "ref",
            "fullload",
            "archive.csv",
            zip_bytes({"data.csv": b"a,b\n1,2\n"}),
            expect="loaded",
            rows=[["1", "2"]],
        )
    )
    xlsx = zip_bytes({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<workbook/>"})
    add(c.drop_bytes("ref", "fullload", "sheet.csv", xlsx, expect="error", reason="Excel workbook"))
    add(
        c.drop_bytes(
            "ref",
            "fullload",
            "two.zip",
            zip_bytes({"a.csv": b"a\n1\n", "b.csv": b"a\n2\n"}),
            expect="error",
            reason="exactly one data file",
        )
    )
    # Names with "..", a leading dash, a newline, control characters: loaded under safe table names.
    for name in ("a..b.csv", "-rf.csv", "new\nline.csv", "bell\x07\x1b[31mred.csv"):
        rows = [[name.encode("unicode_escape").decode()]]
        add(c.drop_bytes("noref", "fullload", name, csv_bytes(["name"], rows), expect="loaded", rows=rows))
    add(c.drop_bytes("noref", "fullload", "..hidden.csv", b"a\n1\n", expect="ignored"))
    # Things that are not regular files, and links to files outside the dropoff.
    folder = c.folder("ref", "append")
    secret = c.root / "secret.csv"
    secret.write_bytes(b"user,password\nroot,hunter2\n")
    os.mkfifo(folder / "pipe.csv")
    add(c.record(Drop(folder / "pipe.csv", "append", "error", None, 0, reason="FIFO")))
    os.symlink(secret, folder / "link.csv")
    add(c.record(Drop(folder / "link.csv", "append", "error", None, 0, reason="symbolic link")))
    os.link(secret, folder / "hard.csv")
    add(c.record(Drop(folder / "hard.csv", "append", "error", None, 0, reason="hard link")))
    if IS_ROOT:
        os.mknod(folder / "device.csv", 0o600 | 0o020000, os.makedev(1, 5))  # like /dev/zero
        add(c.record(Drop(folder / "device.csv", "append", "error", None, 0, reason="device")))
    if can_drop_privileges() is None and IS_ROOT:
        private = folder / "private.csv"
        private.write_bytes(b"a\n1\n")
        private.chmod(0o600)
        os.chown(private, 65534, 65534)
        add(c.record(Drop(private, "append", "error", None, 4, reason="permission denied")))
    return drops, tables


def run_hostile(c: Campaign, share, scale: dict[str, int]) -> None:
    d = c.daemon("hostile", workers=2, unprivileged=can_drop_privileges() is None)
    d.wait_healthy()
    # An existing version that every refused fullload must leave untouched.
    c.drop_rows(
        "ref", "fullload", "bad_utf8.csv", lambda: [("0", "old")], header=("id", "name"), table="bad_utf8"
    )
    c.wait_settled()
    before = snapshot(c)
    drops, tables = hostile_set(c, scale)
    c.wait_settled(timeout=240)
    outcome = c.check([d])
    after = snapshot(c)
    changed = {t for t in set(before) | set(after) if before.get(t) != after.get(t)}
    allowed = {f"ref.{t}" for t in tables} | {"ref.Reference_Data_Cfg", "ref.File_Monitor_Versions"}
    with c.db.engine.connect() as conn:
        # Each version is a table of its own in bkp; the catalogue says whose it is.
        catalogued = conn.execute(
            sa.text('SELECT object_schema, object_name, table_name FROM ref."File_Monitor_Versions"')
        ).all()
    versions_of_loaded = {f"{schema}.{name}" for schema, name, table in catalogued if table in tables}
    unexpected = {
        t for t in changed if t not in versions_of_loaded and not any(t.startswith(a) for a in allowed)
    }
    assert not unexpected, f"hostile input touched other tables: {unexpected}"
    assert b"hunter2" not in str(after).encode()
    reasons = {
        s["file"].rsplit("/", 1)[-1]: s["reason"]
        for kind, mode in (("ref", "append"), ("ref", "fullload"), ("noref", "fullload"), ("noref", "append"))
        for s in sidecars(c.folder(kind, mode))
    }
    share.note(
        f"{len(drops)} hostile inputs: {outcome.statuses['loaded'] - 1} loaded under safe names, "
        f"{outcome.statuses['error']} refused with a reason, 1 hidden file ignored"
    )
    for name, reason in sorted(reasons.items()):
        print(f"{name!r}: {reason}")
    share.survived()


class TestHostileInput:
    def test_hostile_and_malformed_files_are_refused_with_a_reason_or_loaded_safely(
        self, campaign: Campaign, share
    ):
        """Each hostile input ends in error/ with a clear reason or loads under a safe name, alone."""
        run_hostile(campaign, share, {"columns": 500, "line_bytes": 5 * 1024 * 1024, "utf8_rows": 150_000})

    @pytest.mark.soak
    @pytest.mark.timeout(1800)
    def test_full_size_hostile_input(self, campaign: Campaign, share):
        """The same with 10,000 columns, a 100 MB line and invalid UTF-8 deep in a 40 MB file (soak)."""
        run_hostile(
            campaign, share, {"columns": 10_000, "line_bytes": 100 * 1024 * 1024, "utf8_rows": 2_000_000}
        )
