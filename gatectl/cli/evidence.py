"""``gatectl evidence``: what a change reviewer needs for one decision, from the audit log.

For the decision of GATE in force at ``--at`` (default: now): the policy it
was decided under (revision, source, hash), every check with its query,
value, bounds, threshold and samples, the window, the approvals of this
rollout with the names the API server or state store recorded, the trail of
share changes that led there, the record's place in the hash chain and
whether the chain is intact — and, where matplotlib is installed and
Prometheus is reachable, the replay plot of the rollout up to the decision
(embedded in the HTML; ``--plot FILE`` for the others).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gatectl.cli.audit import log_path, read_log, render_line
from gatectl.cli.evidence_render import render_html, render_markdown
from gatectl.errors import GatectlError, UsageError

__all__ = ["add_parser", "build_package"]

_ROLLOUT_STARTS = ("start", "new-revision", "reset")


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    """Register ``gatectl evidence``."""
    p = sub.add_parser(
        "evidence",
        help="the evidence for one decision of GATE, for a change review (md, html, json)",
        description="Write the evidence package of GATE's decision in force at --at: policy"
        " revision, every check (query, value, bounds, samples), the window, approvals and who"
        " gave them, the trail, the hash chain, and the replay plot where matplotlib is"
        " installed.",
    )
    p.add_argument("gate", metavar="GATE", help="NAME or NS/NAME")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--log", metavar="FILE", help="the audit log")
    where.add_argument("--state-file", metavar="FILE", help="file mode: the log beside it")
    p.add_argument("--at", default="now", metavar="TIME", help="RFC 3339 or relative (-2h)")
    p.add_argument("--output", "-o", choices=("md", "html", "json"), default="md")
    p.add_argument("--out", metavar="FILE", help="write here (default: standard output)")
    p.add_argument("--plot", metavar="FILE.png", help="md/json: also draw the replay plot here")
    p.add_argument("--no-plot", action="store_true", help="html: do not draw the replay plot")
    p.add_argument(
        "--prometheus-url", metavar="URL", help="for the plot (else $GATECTL_PROMETHEUS_URL)"
    )
    p.set_defaults(func=_evidence)


def _same_gate(record: Mapping[str, Any], gate: str) -> bool:
    if "/" in gate:
        return f"{record.get('namespace')}/{record.get('gate')}" == gate
    return record.get("gate") == gate


def _time(record: Mapping[str, Any]) -> datetime | None:
    from gatectl.core.timeparse import parse_time

    try:
        return parse_time(str(record.get("time")), now=datetime.now(UTC))
    except ValueError:
        return None


def build_package(lines: Sequence[bytes], *, gate: str, at: datetime, log: str) -> dict[str, Any]:
    """The evidence of ``gate``'s decision in force at ``at``, from the log's ``lines``."""
    from gatectl.core.chain import digest, verify

    verdict = verify(lines)
    ours: list[dict[str, Any]] = []
    for raw in lines:
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if isinstance(record, dict) and _same_gate(record, gate):
            moment = _time(record)
            if moment is not None and moment <= at:
                ours.append(record)
    decisions = [r for r in ours if r.get("kind") == "decision"]
    if not decisions:
        raise UsageError(
            f"{log}: no decision of {gate} recorded at or before {at:%Y-%m-%dT%H:%M:%SZ}"
        )
    decision = decisions[-1]
    starts = [r for r in ours if r.get("action") in _ROLLOUT_STARTS and r["seq"] <= decision["seq"]]
    first = starts[-1]["seq"] if starts else 0
    rollout = [r for r in ours if first <= r["seq"] <= decision["seq"]]
    evidence = decision.get("evidence") or {}
    policy = decision.get("policy") or {}
    checks = [{"kind": "criterion", **c} for c in evidence.get("criteria") or []] + [
        {"kind": "trigger", **t} for t in evidence.get("triggers") or []
    ]
    broken = verdict.broken
    return {
        "gate": f"{decision.get('namespace')}/{decision.get('gate')}",
        "workflow": decision.get("workflow"),
        "at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "decision": {
            k: decision.get(k)
            for k in ("seq", "time", "action", "phase", "share", "step", "actor", "reason")
        }
        | {"reasons": decision.get("reasons") or []},
        "policy": {k: policy.get(k) for k in ("revision", "source", "sha256")},
        "spec": policy.get("spec"),
        "window": evidence.get("window"),
        "samples": evidence.get("samples"),
        "checks": checks,
        "approvals": [
            {
                "time": r.get("time"),
                "approver": r.get("actor"),
                "step": (r.get("evidence") or {}).get("step"),
            }
            for r in rollout
            if r.get("action") == "approve"
        ],
        "rollout_started": starts[-1].get("time") if starts else None,
        "trail": [render_line(r) for r in rollout],
        "chain": {
            "log": log,
            "seq": decision.get("seq"),
            "prev": decision.get("prev"),
            "sha256": digest(decision),
            "intact": broken is None or broken.line > decision["seq"],
            "verified": "intact"
            if broken is None
            else f"line {broken.line}: {broken.kind}: {broken.message}",
        },
        "plot": None,
    }


def _replay_plot(package: dict[str, Any], *, url: str | None, path: Path) -> str | None:
    """Draw the rollout's replay to ``path``; the reason when it cannot be drawn, else None."""
    from gatectl.cli.plot import INSTALL_HINT

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return f"matplotlib is not installed ({INSTALL_HINT})"
    from gatectl.cli.plot import write_plot
    from gatectl.core.timeparse import parse_time
    from gatectl.engine.replay import instants, replay_from_prometheus
    from gatectl.policy.models import Gate, GateSpec

    spec = package.get("spec")
    if not isinstance(spec, Mapping):
        return "the record holds no policy spec"
    namespace, _, name = str(package["gate"]).partition("/")
    try:
        gate = Gate(name=name, namespace=namespace, spec=GateSpec.model_validate(spec))
    except ValueError as exc:
        return f"the recorded policy does not load: {str(exc).splitlines()[0]}"
    now = datetime.now(UTC)
    end = parse_time(str(package["decision"]["time"]), now=now)
    window = package.get("window") or {}
    start_text = package.get("rollout_started") or window.get("started_at")
    start = parse_time(str(start_text), now=now) if start_text else end - timedelta(hours=1)
    span = max((end - start).total_seconds(), 1.0)
    every = max(span / 300, min(gate.spec.evaluation_interval, span))
    try:
        replay = replay_from_prometheus(
            gate,
            at=instants(start, end, every_seconds=every),
            started_at=start,
            url=url,
            approve_all=bool(package.get("approvals")),  # a human approved: so does the replay
        )
        write_plot(replay, path)
    except (GatectlError, ValueError, OSError) as exc:
        return f"replay failed: {exc}"
    return None


def _evidence(args: argparse.Namespace) -> int:
    from gatectl.core.timeparse import parse_time

    try:
        at = parse_time(args.at, now=datetime.now(UTC))
    except ValueError as exc:
        raise UsageError(f"--at: {exc}") from None
    if args.plot and not args.plot.endswith(".png"):
        raise UsageError(f"--plot {args.plot}: the file must end in .png")
    log = log_path(args)
    lines, _ = read_log([log])
    package = build_package(lines, gate=args.gate, at=at, log=log)
    url = args.prometheus_url or os.environ.get("GATECTL_PROMETHEUS_URL") or None
    image: bytes | None = None
    if args.plot:
        why = _replay_plot(package, url=url, path=Path(args.plot))
        package["plot"] = {"file": args.plot} if why is None else {"not_drawn": why}
    elif args.output == "html" and not args.no_plot:
        with tempfile.TemporaryDirectory() as scratch:
            target = Path(scratch) / "replay.png"
            why = _replay_plot(package, url=url, path=target)
            if why is None:
                image = target.read_bytes()
        package["plot"] = {"embedded": True} if why is None else {"not_drawn": why}
    if args.output == "json":
        text = json.dumps(package, indent=2, ensure_ascii=False) + "\n"
    elif args.output == "html":
        png = base64.b64encode(image).decode("ascii") if image else None
        text = render_html(package, png_base64=png)
    else:
        text = render_markdown(package)
    if args.out:
        try:
            Path(args.out).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--out {args.out}: {exc.strerror or exc}") from None
    else:
        sys.stdout.write(text)
    return 0
