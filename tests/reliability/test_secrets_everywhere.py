"""No password and no protected value appears in any output, file or table, whatever happens.

A database password (with characters that need URL encoding, given once in the user info and
once as a ``?password=`` query value) and a payment card number in a column the table's policy
hashes are pushed through every command and every failure path: a good load, a refused misfit,
a failing validation rule, ragged rows skipped into a rejects file, an unreachable database, an
option before the command, argparse errors and a daemon run at DEBUG. Then every captured
output, every file under the test folder and every row of every table is searched for them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tests.daemon.support import REPO
from tests.reliability.conftest import APP_PASSWORD

pytestmark = [pytest.mark.reliability, pytest.mark.postgres]

CARD = "4111111111111111"
POLICY = """\
sensitive:
  columns: {card: hash}
rules:
  - {rule: pattern, column: card, regex: "^5[0-9]{15}$"}
"""


def run(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """What the command printed (the command line itself is ours, not the product's output)."""
    proc = subprocess.run(
        [sys.executable, "-m", "backend", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return f"$ {args[0]} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


def forbidden() -> list[str]:
    return [APP_PASSWORD, quote(APP_PASSWORD, safe=""), quote(APP_PASSWORD), CARD]


def assert_clean(text: str, where: str) -> None:
    for secret in forbidden():
        assert secret not in text, f"{secret!r} found in {where}:\n{text[:2000]}"


@pytest.mark.parametrize("form", ["userinfo", "query"])
def test_no_password_or_card_number_leaves_the_process(tmp_path, app_role, form):
    """Every command, failure path and stored row is free of the password and the protected card number."""
    url = make_url(app_role)
    if form == "query":
        text = url.set(password=None).render_as_string(hide_password=False)
        text += f"?password={quote(APP_PASSWORD, safe='')}"
    else:
        text = url.render_as_string(hide_password=False)
    unreachable = make_url(text).set(port=1).render_as_string(hide_password=False)
    if form == "query":
        unreachable = text.replace(f":{url.port}/", ":1/")
    root = tmp_path / "work"
    (root / "config" / "tables").mkdir(parents=True)
    (root / "config" / "tables" / "cards.yaml").write_text(POLICY, encoding="utf-8")
    (root / "config" / "tables" / "ragged.yaml").write_text(
        "ragged_rows: skip\nsensitive:\n  columns: {card: hash}\n", encoding="utf-8"
    )
    env = {
        **os.environ,
        "DATABASE_URL": text,
        "DATA_DIR": str(root / "data"),
        "DROPOFF_BASE_PATH": str(root / "dropoff"),
        "CONFIG_DIR": str(root / "config"),
        "HEALTH_ENABLED": "false",
        "LOG_LEVEL": "DEBUG",
        "DB_CONNECT_TIMEOUT_SECONDS": "2",
        "PYTHONPATH": str(REPO),
    }
    good = root / "cards.csv"
    good.write_text(f"id,card\n1,5{CARD[1:]}\n2,5500000000000004\n", encoding="utf-8")
    bad = root / "cards_bad.csv"
    bad.write_text(f"id,card\n1,{CARD}\n", encoding="utf-8")
    ragged = root / "ragged.csv"
    ragged.write_text(f"id,card\n1,5500000000000004\n2,{CARD},extra\n", encoding="utf-8")
    typed = root / "typed.csv"
    typed.write_text("id,qty,card\n1,5,5500000000000004\n", encoding="utf-8")
    misfit = root / "typed_bad.csv"
    misfit.write_text(f"id,qty,card\n1,abc,{CARD}\n", encoding="utf-8")
    (root / "config" / "tables" / "typed.yaml").write_text("sensitive:\n  columns: {card: mask}\n")
    outputs = [
        run(["check-config"], env, root),
        run(["init-db"], env, root),
        run(["load", str(good), "--table", "cards"], env, root),
        run(["load", str(bad), "--table", "cards"], env, root),
        run(["load", str(ragged), "--table", "ragged"], env, root),
        run(["load", str(typed), "--table", "typed", "--types", "infer"], env, root),
        run(["load", str(misfit), "--table", "typed"], env, root),
        run(["detect", str(bad)], env, root),
        run(["export", "cards"], env, root),
        run(["status"], env, root),
        run(["status", "--json"], env, root),
        run(["history"], env, root),
        run(["profile", "cards"], env, root),
        run(["retry", "99999"], env, root),
        run(["cancel", "99999"], env, root),
        run(["restore", "cards", "--version", "7"], env, root),
        run(["--database-url", text, "status"], env, root),
        run(["--database-url", text, "no-such-command"], env, root),
        run(["status", "--database-url", text, "--no-such-option"], env, root),
        run(["status"], {**env, "DATABASE_URL": unreachable}, root),
        run(["load", str(good)], {**env, "DATABASE_URL": unreachable}, root),
        run(["check-config"], {**env, "DATABASE_URL": unreachable}, root),
    ]
    drop = root / "dropoff" / "reference_data_table" / "fullload"
    drop.mkdir(parents=True, exist_ok=True)
    (drop / "cards.csv").write_text(bad.read_text(encoding="utf-8"), encoding="utf-8")
    outputs.append(
        run(
            ["run", "--until-idle"],
            {**env, "MONITOR_INTERVAL": "0.2", "STABILITY_CHECKS": "1", "LOG_FORMAT": "json"},
            root,
        )
    )
    for output in outputs:
        assert_clean(output, "command output")
    # Make sure the paths under test were really taken.
    joined = "\n".join(outputs)
    assert "validation failed" in joined and "does not fit" in joined and "monitor started" in joined
    assert list((root / "dropoff").rglob("*.error.json")), "the daemon refused nothing"
    assert list(root.rglob("*.rejects.csv")), "no rejects file was written"
    for path in root.rglob("*"):
        # The data files themselves (inputs, and the same files moved to processed/ or error/)
        # hold the card by design; everything the product wrote must not.
        data_file = path.suffix == ".csv" and not path.name.endswith(".rejects.csv")
        if path.is_file() and path.suffix != ".db" and not data_file:
            assert_clean(path.read_text(encoding="utf-8", errors="replace"), str(path))
    engine = sa.create_engine(app_role)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            for schema in ("ref", "bkp"):
                for table in inspector.get_table_names(schema=schema):
                    for row in conn.execute(sa.text(f'SELECT * FROM "{schema}"."{table}"')):
                        assert_clean(repr(tuple(row)), f"{schema}.{table}")
    finally:
        engine.dispose()
