"""`status` and `history` for a person: aligned tables with sizes, durations, rows and reasons."""

from __future__ import annotations

from typing import IO, Any

from backend.ops.render import console, human_bytes, human_seconds, short, table


def print_status(snapshot: dict[str, Any], out: IO[str] | None = None) -> None:
    """What is loading, what waits for stability, the last results and the last errors."""
    screen = console(out)
    daemon = snapshot.get("daemon")
    screen.print(f"daemon: {daemon}" if daemon else "daemon: not reachable (database view only)")
    if snapshot.get("database_error"):
        screen.print(f"database: {snapshot['database_error']}")
    loading = snapshot.get("in_flight") or []
    if loading:
        screen.print(
            table(
                "loading now",
                ["id>", "file", "table", "rows>", "progress>", "started"],
                [
                    [
                        r.get("id"),
                        r.get("file_name"),
                        r.get("table_name"),
                        r.get("rows_done") or 0,
                        f"{r['progress_percent']:.0f} %" if r.get("progress_percent") is not None else "",
                        r.get("created_at"),
                    ]
                    for r in loading
                ],
            )
        )
    waiting = snapshot.get("waiting_for_stability") or []
    if waiting:
        screen.print(
            table(
                "waiting for stability",
                ["file", "stable checks>"],
                [[w.get("file"), f"{w.get('checks_done')} of {w.get('checks_needed')}"] for w in waiting],
            )
        )
    if not loading and not waiting:
        screen.print("nothing is loading or waiting")
    results = (snapshot.get("last_results") or [])[:10]
    screen.print(
        table(
            "last results",
            ["id>", "status", "file", "table", "rows>", "size>", "took>", "finished (UTC)"],
            [
                [
                    r.get("id"),
                    r.get("status"),
                    r.get("file_name"),
                    r.get("table_name"),
                    r.get("rows_loaded"),
                    human_bytes(r.get("file_size")),
                    human_seconds(r.get("seconds")),
                    r.get("processed_at") or r.get("created_at"),
                ]
                for r in results
            ],
        )
    )
    errors = (snapshot.get("last_errors") or [])[:10]
    if errors:
        screen.print(
            table(
                "last errors",
                ["id>", "file", "table", "stage", "error", "to retry"],
                [
                    [
                        r.get("id"),
                        r.get("file_name"),
                        r.get("table_name"),
                        r.get("error_stage") or r.get("status"),
                        short(r.get("error_message"), 200),
                        r.get("retry_command") or "",
                    ]
                    for r in errors
                ],
            )
        )


def print_history(rows: list[dict[str, Any]], out: IO[str] | None = None) -> None:
    """Loads newest first: when, outcome, size, duration, rows (and change), bkp version, columns."""
    screen = console(out)
    if not rows:
        screen.print("no loads yet")
        return
    screen.print(
        table(
            None,
            [
                "id>",
                "finished (UTC)",
                "status",
                "mode",
                "table",
                "file",
                "size>",
                "took>",
                "rows>",
                "change>",
                "bkp>",
                "columns",
                "error",
            ],
            [
                [
                    r["id"],
                    r.get("finished_at") or r.get("created_at"),
                    r["status"],
                    r["load_type"],
                    r["table_name"],
                    r["file_name"],
                    human_bytes(r.get("file_size")),
                    human_seconds(r.get("seconds")),
                    r.get("rows_loaded"),
                    f"{r['rows_change']:+d}" if r.get("rows_change") is not None else "",
                    f"v{r['backup_version']}" if r.get("backup_version") else "",
                    _column_changes(r),
                    short(r.get("error_message"), 120),
                ]
                for r in rows
            ],
        )
    )


def _column_changes(row: dict[str, Any]) -> str:
    parts = [f"+{c}" for c in row.get("columns_added") or []] + [
        f"-{c}" for c in row.get("columns_removed") or []
    ]
    return " ".join(parts)
