"""The evidence package as Markdown (for a ticket or a pull request) and as one HTML page.

Pure: a package (``gatectl.cli.evidence.build_package``) in, text out. The
HTML is self-contained — no script, no external resource; the replay plot,
when there is one, is embedded as a PNG — so it opens the same anywhere and
can be attached to a change record. Every value from the log is escaped.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["CHECK_COLUMNS", "render_html", "render_markdown"]

CHECK_COLUMNS = (
    ("kind", "check"),
    ("metric", "metric"),
    ("condition", "condition"),
    ("result", "result"),
    ("value", "value"),
    ("threshold", "threshold"),
    ("bounds", "bounds"),
    ("samples", "samples"),
    ("query", "query"),
)


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, Mapping | list):
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return str(value)


def _cells(check: Mapping[str, Any]) -> list[str]:
    bounds = "-"
    if check.get("lower_bound") is not None:
        bounds = (
            f"[{_text(check.get('lower_bound'))}, {_text(check.get('upper_bound'))}]"
            f" at {_text(check.get('confidence'))} ({_text(check.get('method'))})"
        )
    row = {
        "kind": check.get("kind"),
        "metric": check.get("metric"),
        "condition": check.get("condition") or check.get("expression"),
        "result": check.get("result"),
        "value": check.get("value"),
        "threshold": check.get("threshold"),
        "bounds": bounds,
        "samples": check.get("samples"),
        "query": check.get("query"),
    }
    return [_text(row[key]) for key, _ in CHECK_COLUMNS]


def _share(value: Any) -> str:
    return f"{float(value) * 100:g} %" if isinstance(value, int | float) else "-"


def _summary(package: Mapping[str, Any]) -> list[tuple[str, str]]:
    decision = package["decision"]
    share = decision.get("share") or {}
    window = package.get("window") or {}
    policy = package.get("policy") or {}
    chain = package["chain"]
    return [
        ("gate", f"{package['gate']} (workflow {package.get('workflow')})"),
        ("decision", f"{decision.get('action')} → phase {decision.get('phase')}"),
        ("share", f"{_share(share.get('before'))} → {_share(share.get('after'))}"),
        ("decided", f"{decision.get('time')} by {decision.get('actor')}"),
        ("reason", "; ".join(decision.get("reasons") or []) or str(decision.get("reason") or "")),
        ("policy revision", _text(policy.get("revision"))),
        ("policy", f"{_text(policy.get('source'))} (sha256 {_text(policy.get('sha256'))})"),
        (
            "window",
            f"from {_text(window.get('started_at'))}: {_text(window.get('elapsed_seconds'))} s"
            f" of {_text(window.get('required_seconds'))} s",
        ),
        ("samples", _text(package.get("samples"))),
        ("rollout started", _text(package.get("rollout_started"))),
        (
            "audit record",
            f"seq {chain['seq']}, sha256 {chain['sha256']}, prev {_text(chain['prev'])}",
        ),
        ("chain", f"{chain['log']}: {chain['verified']}"),
    ]


def _approvals(package: Mapping[str, Any]) -> list[list[str]]:
    return [
        [_text(a.get("time")), _text(a.get("approver")), _text(a.get("step"))]
        for a in package.get("approvals") or []
    ]


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return lines


def render_markdown(package: Mapping[str, Any]) -> str:
    """The package as Markdown."""
    lines = [f"# Evidence: {package['gate']} at {package['at']}", ""]
    lines += _md_table(("", ""), _summary(package))
    lines += ["", "## Checks", ""]
    lines += _md_table(
        [title for _, title in CHECK_COLUMNS], [_cells(c) for c in package["checks"]]
    )
    lines += ["", "## Approvals in this rollout", ""]
    approvals = _approvals(package)
    lines += _md_table(("time", "approver", "step"), approvals) if approvals else ["none"]
    lines += ["", "## Trail of this rollout", "", "```"]
    lines += [*(package.get("trail") or []), "```", "", "## Replay plot", ""]
    plot = package.get("plot") or {}
    if plot.get("file"):
        lines.append(f"![replay of {package['gate']}]({plot['file']})")
    else:
        lines.append(f"not drawn: {plot.get('not_drawn', 'give --plot FILE.png to draw it')}")
    return "\n".join(lines) + "\n"


_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #eee; }
td.query { font-family: monospace; font-size: 0.85em; max-width: 40em; word-break: break-all; }
pre { background: #f6f6f6; padding: 0.5em; overflow-x: auto; }
img { max-width: 100%; border: 1px solid #ccc; }
"""


def _html_table(
    table_id: str, header: Sequence[str], rows: Sequence[Sequence[str]], *, query_col: int = -1
) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="query">{html.escape(c)}</td>'
            if i == query_col
            else f"<td>{html.escape(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def render_html(package: Mapping[str, Any], *, png_base64: str | None) -> str:
    """The package as one self-contained HTML page (the plot embedded when given)."""
    title = f"Evidence: {package['gate']} at {package['at']}"
    summary = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in _summary(package)
    )
    checks = _html_table(
        "checks",
        [title for _, title in CHECK_COLUMNS],
        [_cells(c) for c in package["checks"]],
        query_col=len(CHECK_COLUMNS) - 1,
    )
    approvals = _approvals(package)
    approved = (
        _html_table("approvals", ("time", "approver", "step"), approvals)
        if approvals
        else '<p id="approvals">none</p>'
    )
    trail = html.escape("\n".join(package.get("trail") or []))
    plot = package.get("plot") or {}
    if png_base64:
        figure = (
            f'<img id="replay-plot" alt="replay of {html.escape(str(package["gate"]))}"'
            f' src="data:image/png;base64,{png_base64}">'
        )
    else:
        reason = plot.get("not_drawn", "not asked for")
        figure = f'<p id="replay-plot-missing">not drawn: {html.escape(str(reason))}</p>'
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f'<table id="summary"><tbody>{summary}</tbody></table>'
        f"<h2>Checks</h2>{checks}"
        f"<h2>Approvals in this rollout</h2>{approved}"
        f'<h2>Trail of this rollout</h2><pre id="trail">{trail}</pre>'
        f"<h2>Replay plot</h2>{figure}"
        "</body></html>\n"
    )
