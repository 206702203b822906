"""The operator's status page at ``/``: one server-rendered HTML document, no script, no external asset.

It shows what the JSON endpoints hold, for a person: files loading now with their progress, files
waiting for stability with their checks, each table's last load with its age and rows, the last
errors with their reason and the exact `retry` command, and a chart of the last 24 hours' loads
(inline SVG). It refreshes itself (``<meta http-equiv="refresh">``), fits a phone's width (wide
tables scroll inside their box, long messages wrap), and loads nothing from anywhere: plants
often have no internet, and the health server's Content-Security-Policy forbids it anyway.
Every value is HTML-escaped: file names and error messages come from outside.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

from backend.ops.render import ago, human_bytes, human_seconds, short

#: Seconds between two automatic reloads of the page.
REFRESH_SECONDS = 10
#: A table whose last successful load is older than this is marked stale (a daily feed plus slack).
STALE_AFTER_SECONDS = 25 * 3600
_CHART_W, _CHART_H, _CHART_PAD = 480, 120, 18

_STYLE = """
:root{color-scheme:light dark;--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--mute:#6e7781;--line:#d0d7de}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;padding:12px;
max-width:1100px}
h1{font-size:1.25rem;margin:.2rem 0}h2{font-size:1.05rem;margin:1.4rem 0 .4rem}
.meta{color:var(--mute);font-size:.85rem}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(130px,1fr));gap:8px;margin:.8rem 0}
.card{border:1px solid var(--line);border-radius:8px;padding:8px 10px}
.card b{display:block;font-size:1.4rem}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}
td.n,th.n{text-align:right;white-space:nowrap}
td.msg{min-width:14rem;overflow-wrap:anywhere}
code{font:.85rem ui-monospace,SFMono-Regular,Menlo,monospace;overflow-wrap:anywhere;user-select:all}
.bar{background:var(--line);border-radius:4px;height:8px;min-width:80px}
.bar i{display:block;height:8px;border-radius:4px;background:var(--ok)}
.ok{color:var(--ok)}.bad{color:var(--bad)}.warn{color:var(--warn)}.mute{color:var(--mute)}
svg{max-width:100%;height:auto}
"""


def render_page(data: dict[str, Any], now: datetime | None = None) -> str:
    """The whole HTML document for `data` (what `probes.page_snapshot` gathers).

    Args:
        data: ``in_flight``, ``waiting_for_stability``, ``tables``, ``last_errors``,
            ``last_results``, ``loads_per_hour``, ``database`` (``{"up": bool, "error": str}``),
            ``daemon``, ``dropoff``; missing parts are shown as empty.
        now: the time the page is rendered (UTC; tests pass a fixed one).
    """
    now = now or datetime.now(UTC)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">',
        "<title>refdata-monitor status</title>",
        f"<style>{_STYLE}</style></head><body>",
        _header(data, now),
        _cards(data),
        _in_flight(data.get("in_flight") or []),
        _waiting(data.get("waiting_for_stability") or []),
        _tables(data.get("tables") or [], now),
        _errors(data.get("last_errors") or [], now),
        _chart(data.get("loads_per_hour") or []),
        _results(data.get("last_results") or [], now),
        "</body></html>",
    ]
    return "\n".join(parts)


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _header(data: dict[str, Any], now: datetime) -> str:
    db = data.get("database") or {}
    state = (
        '<span class="ok">database up</span>'
        if db.get("up")
        else f'<span class="bad">database unavailable: {_e(short(db.get("error"), 200))}</span>'
    )
    return (
        "<header><h1>Reference data monitor</h1>"
        f'<div class="meta">{state} · daemon {_e(data.get("daemon"))} · watching {_e(data.get("dropoff"))}'
        f" · {_e(now.strftime('%Y-%m-%dT%H:%M:%SZ'))} · refreshes every {REFRESH_SECONDS} s</div></header>"
    )


def _cards(data: dict[str, Any]) -> str:
    hours = data.get("loads_per_hour") or []
    loaded = sum(h.get("loaded", 0) for h in hours)
    failed = sum(h.get("error", 0) + h.get("cancelled", 0) for h in hours)
    cards = (
        ("loading", len(data.get("in_flight") or []), ""),
        ("waiting", len(data.get("waiting_for_stability") or []), ""),
        ("loaded, 24 h", loaded, "ok"),
        ("failed, 24 h", failed, "bad" if failed else ""),
    )
    items = "".join(
        f'<div class="card"><b class="{cls}">{_e(n)}</b>{_e(label)}</div>' for label, n, cls in cards
    )
    return f'<section class="cards" aria-label="summary">{items}</section>'


def _section(
    title: str, headers: Sequence[str], rows: Iterable[Sequence[str]], empty: str, ident: str
) -> str:
    """A titled table; headers ending in ``>`` are numbers. Cells are HTML already."""
    body = list(rows)
    if not body:
        return f'<section id="{ident}"><h2>{_e(title)}</h2><p class="mute">{_e(empty)}</p></section>'
    head = "".join(
        f'<th class="n">{_e(h[:-1])}</th>' if h.endswith(">") else f"<th>{_e(h)}</th>" for h in headers
    )
    lines = "".join("<tr>" + "".join(row) + "</tr>" for row in body)
    return (
        f'<section id="{ident}"><h2>{_e(title)} <span class="mute">({len(body)})</span></h2>'
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{lines}</tbody></table></div>'
        "</section>"
    )


def _td(value: Any, cls: str = "") -> str:
    return f'<td class="{cls}">{_e(value)}</td>' if cls else f"<td>{_e(value)}</td>"


def _bar(percent: float | None) -> str:
    if percent is None:
        return '<td class="mute">size unknown</td>'
    width = max(0.0, min(100.0, float(percent)))
    return (
        f'<td><div class="bar" role="progressbar" aria-valuenow="{width:.0f}" aria-valuemin="0" '
        f'aria-valuemax="100"><i style="width:{width:.0f}%"></i></div> {width:.0f}%</td>'
    )


def _in_flight(items: list[dict[str, Any]]) -> str:
    rows = (
        [
            _td(f"#{item.get('id')}"),
            _td(item.get("file_name")),
            _td(item.get("table_name")),
            _td(item.get("rows_done") or 0, "n"),
            _bar(item.get("progress_percent")),
            _td(ago(item.get("created_at")).replace(" ago", "")),
        ]
        for item in items
    )
    return _section(
        "Loading now",
        ["id", "file", "table", "rows>", "progress", "running for"],
        rows,
        "Nothing is loading.",
        "in-flight",
    )


def _waiting(items: list[dict[str, Any]]) -> str:
    rows = []
    for item in items:
        done, need = int(item.get("checks_done") or 0), int(item.get("checks_needed") or 1)
        rows.append([_td(item.get("file")), _td(f"{done} of {need}", "n"), _bar(100.0 * done / max(need, 1))])
    return _section(
        "Waiting for stability", ["file", "stable checks>", ""], rows, "No file is waiting.", "waiting"
    )


def _tables(items: list[dict[str, Any]], now: datetime) -> str:
    rows = []
    for item in items:
        epoch = item.get("finished_at_epoch")
        age = now.timestamp() - epoch if epoch is not None else None
        stale = age is not None and age > STALE_AFTER_SECONDS
        age_text = human_seconds(age) + " ago" if age is not None else ""
        fresh = f'<td class="{"warn" if stale else "ok"}">{_e(age_text)}'
        fresh += f'<br><span class="mute">{_e(item.get("finished_at"))}</span></td>'
        rows.append(
            [
                _td(item.get("table")),
                fresh,
                _td(item.get("rows_loaded"), "n"),
                _td(item.get("load_type")),
                _td(f"#{item.get('tracking_id')} {item.get('file_name')}"),
            ]
        )
    return _section(
        "Tables",
        ["table", "last load", "rows>", "mode", "file"],
        rows,
        "No table has been loaded yet.",
        "tables",
    )


def _errors(items: list[dict[str, Any]], now: datetime) -> str:
    rows = []
    for item in items:
        command = item.get("retry_command")
        fix = (
            f"<td><code>{_e(command)}</code></td>" if command else '<td class="mute">file not in error/</td>'
        )
        rows.append(
            [
                _td(f"#{item.get('id')}"),
                _td(item.get("file_name")),
                _td(item.get("table_name")),
                _td(ago(item.get("processed_at") or item.get("created_at"), now)),
                _td(item.get("error_stage") or item.get("status")),
                _td(short(item.get("error_message"), 400), "msg"),
                fix,
            ]
        )
    return _section(
        "Errors", ["id", "file", "table", "when", "stage", "reason", "to retry"], rows, "No errors.", "errors"
    )


def _results(items: list[dict[str, Any]], now: datetime) -> str:
    rows = (
        [
            _td(f"#{item.get('id')}"),
            f'<td class="{_status_class(item.get("status"))}">{_e(item.get("status"))}</td>',
            _td(item.get("file_name")),
            _td(item.get("table_name")),
            _td(item.get("rows_loaded"), "n"),
            _td(human_bytes(item.get("file_size")), "n"),
            _td(human_seconds(item.get("seconds")), "n"),
            _td(ago(item.get("processed_at") or item.get("created_at"), now)),
        ]
        for item in items[:15]
    )
    return _section(
        "Last results",
        ["id", "status", "file", "table", "rows>", "size>", "took>", "when"],
        rows,
        "Nothing has been handled yet.",
        "results",
    )


def _status_class(status: Any) -> str:
    return {"loaded": "ok", "duplicate": "mute", "error": "bad", "cancelled": "warn"}.get(str(status), "")


def _chart(hours: list[dict[str, Any]]) -> str:
    """Loads per hour as stacked bars: loaded (green) under errors (red), the last 24 hours."""
    if not hours:
        return ""
    top = max(
        1,
        max(
            h.get("loaded", 0) + h.get("duplicate", 0) + h.get("error", 0) + h.get("cancelled", 0)
            for h in hours
        ),
    )
    slot = (_CHART_W - 2 * _CHART_PAD) / len(hours)
    base = _CHART_H - _CHART_PAD
    scale = (_CHART_H - 2 * _CHART_PAD) / top
    bars = []
    for i, hour in enumerate(hours):
        x = _CHART_PAD + i * slot + 1
        good = hour.get("loaded", 0) + hour.get("duplicate", 0)
        bad = hour.get("error", 0) + hour.get("cancelled", 0)
        label = f"{hour.get('hour')}: {good} loaded, {bad} failed"
        if good:
            bars.append(
                f'<rect x="{x:.1f}" y="{base - good * scale:.1f}" width="{slot - 2:.1f}" '
                f'height="{good * scale:.1f}" fill="#2da44e"><title>{_e(label)}</title></rect>'
            )
        if bad:
            bars.append(
                f'<rect x="{x:.1f}" y="{base - (good + bad) * scale:.1f}" width="{slot - 2:.1f}" '
                f'height="{bad * scale:.1f}" fill="#cf222e"><title>{_e(label)}</title></rect>'
            )
    first, last = str(hours[0].get("hour", ""))[11:16], str(hours[-1].get("hour", ""))[11:16]
    total_good = sum(h.get("loaded", 0) + h.get("duplicate", 0) for h in hours)
    total_bad = sum(h.get("error", 0) + h.get("cancelled", 0) for h in hours)
    svg = (
        f'<svg viewBox="0 0 {_CHART_W} {_CHART_H}" width="{_CHART_W}" height="{_CHART_H}" role="img" '
        f'aria-label="files per hour, last {len(hours)} hours: {total_good} loaded, {total_bad} failed">'
        f'<line x1="{_CHART_PAD}" y1="{base}" x2="{_CHART_W - _CHART_PAD}" y2="{base}" stroke="#8c959f"/>'
        f'<text x="{_CHART_PAD}" y="{_CHART_H - 3}" font-size="10" fill="#6e7781">{_e(first)} UTC</text>'
        f'<text x="{_CHART_W - _CHART_PAD}" y="{_CHART_H - 3}" font-size="10" fill="#6e7781" '
        f'text-anchor="end">{_e(last)}</text>'
        f'<text x="{_CHART_PAD}" y="11" font-size="10" fill="#6e7781">max {top} / hour</text>'
        + "".join(bars)
        + "</svg>"
    )
    return (
        f'<section id="chart"><h2>Files per hour <span class="mute">(last {len(hours)} h: '
        f"{total_good} loaded, {total_bad} failed)</span></h2>{svg}</section>"
    )
