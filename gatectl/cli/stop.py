"""``gatectl fallback``: the stop button. Take the AI path out of a gate (or a workflow) now.

The request names who asks (the authenticated user: the API server's answer
to a SelfSubjectReview on Kubernetes, the Unix account that writes the state
store in file mode) and why. The controller acts on it at its next tick,
whatever the gate's interval and whatever its metrics say: the share goes to
0 (the deterministic path) and stays there — a fallback is sticky until
``gatectl reset`` or a new revision. A gate held because its stored state
cannot be trusted (file mode) falls back too: the hold never outranks a
human's stop. The command then waits for the controller to confirm
(``--wait``), so "fell back" means traffic moved.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gatectl.cli.humans import unix_user
from gatectl.errors import NotFoundError, UsageError

__all__ = ["EXIT_PENDING", "add_parser"]

EXIT_PENDING = 3
"""The request is recorded, but the controller did not confirm it within ``--wait``."""

_EPILOG = """\
exit codes:
  0   fell back: the controller moved traffic to the deterministic path
  3   recorded, not yet confirmed (no controller running, or --wait ran out):
      the gate falls back on the controller's next pass
  2   invalid input: unknown gate or workflow, no --reason

How it differs: `gatectl pause` stops evaluating and leaves traffic where it
is; `gatectl reset` clears a fallback and restarts at step 1; `gatectl
fallback` moves traffic to the deterministic path now and keeps it there.
"""
_REASON_MAX = 1000


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    """Register ``gatectl fallback``."""
    p = sub.add_parser(
        "fallback",
        help="the stop button: fall GATE (or every gate of a workflow) back now",
        description="Take the AI path out: the gate falls back to the deterministic path on"
        " the controller's next tick, whatever its metrics say, and stays there until"
        " `gatectl reset` or a new revision. Recorded with who asked and why.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("gate", nargs="?", metavar="GATE", help="NAME (or NS/NAME in file mode)")
    p.add_argument("--workflow", metavar="W", help="every gate of workflow W instead of GATE")
    p.add_argument("--reason", required=True, metavar="TEXT", help="why (kept in the audit log)")
    p.add_argument("--state-file", metavar="FILE", help="file mode: the controller's state file")
    p.add_argument("--kubeconfig", metavar="FILE", help="Kubernetes: default in-cluster/~/.kube")
    p.add_argument("--context", metavar="NAME")
    p.add_argument("--namespace", "-n", default="default", metavar="NS")
    p.add_argument(
        "--wait",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="wait this long for the controller to confirm (default 10; 0: do not wait)",
    )
    p.set_defaults(func=_fallback)


def _reason(text: str) -> str:
    reason = " ".join(text.split())
    if not reason:
        raise UsageError("--reason: say why (it is kept in the audit log)")
    if len(reason) > _REASON_MAX:
        raise UsageError(f"--reason: at most {_REASON_MAX} characters, got {len(reason)}")
    return reason


def _token() -> str:
    from gatectl.core.timeparse import format_time

    return format_time(datetime.now(UTC))


def _fallback(args: argparse.Namespace) -> int:
    if bool(args.gate) == bool(args.workflow):
        raise UsageError("give GATE or --workflow W (one of them)")
    reason, token = _reason(args.reason), _token()
    if args.state_file:
        return _file_mode(args, reason=reason, token=token)
    return _kube_mode(args, reason=reason, token=token)


@dataclass(frozen=True)
class _Asked:
    """One stop request: the gates (``NS/NAME``), its token, who asked and why."""

    keys: list[str]
    token: str
    who: str
    reason: str


def _confirm(
    asked: _Asked,
    *,
    wait: float,
    read: Callable[[], Mapping[str, Mapping[str, Any]]],
    why_not: str,
) -> int:
    """Wait up to ``wait`` seconds for the controller to act on ``asked``; say what happened."""
    done: set[str] = set()
    if wait > 0:
        deadline = time.monotonic() + wait
        while True:
            statuses = read()
            done = {k for k in asked.keys if _acted(statuses.get(k) or {}, asked.token)}
            if len(done) == len(asked.keys) or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
    for key in asked.keys:
        if key in done:
            print(f"fell back {key}: traffic at 0% (by {asked.who}: {asked.reason})")
        elif wait <= 0:
            print(f"fallback requested for {key} by {asked.who}: it falls back on the next pass")
        else:
            print(
                f"gatectl: fallback of {key} recorded (by {asked.who}) but not confirmed:"
                f" {why_not}; it falls back on the controller's next pass",
                file=sys.stderr,
            )
    return 0 if wait <= 0 or len(done) == len(asked.keys) else EXIT_PENDING


def _acted(status: Mapping[str, Any], token: str) -> bool:
    """The controller acted on ``token`` and traffic moved (not "traffic not moved: ...").

    A pass whose actuator failed still records the fallback (share 0, the token)
    with that message; the pass that moves traffic replaces it with "fallen back by".
    """
    message = str(status.get("message") or "")
    return (
        status.get("lastFallback") == token
        and not status.get("pending")
        and not message.startswith("traffic not moved")
    )


# -- file mode ------------------------------------------------------------------------------


def _file_mode(args: argparse.Namespace, *, reason: str, token: str) -> int:
    from gatectl.engine.filestate import LeaderLock
    from gatectl.engine.statestore import StateStore
    from gatectl.engine.stored import describe, stored_gates

    if not os.path.exists(args.state_file):
        raise UsageError(f"{args.state_file}: no state store here (has `gatectl run` run?)")
    who = unix_user()
    state = StateStore(args.state_file)
    try:
        now = datetime.now(UTC)
        if args.workflow:
            gates = stored_gates(state, now=now)
            keys = [g.key for g in gates if g.status.get("workflow") == args.workflow]
            if not keys:
                known = sorted({str(g.status.get("workflow")) for g in gates} - {"None"})
                raise UsageError(
                    f"no gate of workflow {args.workflow} in {args.state_file}"
                    f" (known: {', '.join(known) or 'none yet'})"
                )
        else:
            keys = [args.gate if "/" in args.gate else f"{args.namespace}/{args.gate}"]
        journal = state.journal(keys)
        request = {"token": token, "by": who, "reason": reason}
        for key in keys:

            def edit(row: Any, key: str = key) -> tuple[dict[str, Any], str | None]:
                stored = describe(row, journal.get(key, []), file=state.name, now=now)
                requests = dict(stored.requests)
                requests["fallback"] = request
                return requests, None

            state.update_requests(key, edit)
    finally:
        state.close()
    asked = _Asked(keys, token, who, reason)
    lock = LeaderLock(args.state_file)
    if args.wait > 0 and lock.try_acquire():
        lock.release()
        why = f"no controller is running on {args.state_file}, traffic has not moved"
        return _confirm(asked, wait=1e-9, read=dict, why_not=why)

    def read() -> dict[str, Mapping[str, Any]]:
        view = StateStore(args.state_file, readonly=True)
        try:
            return {g.key: g.status for g in stored_gates(view, now=datetime.now(UTC))}
        finally:
            view.close()

    why = f"the controller did not act within {args.wait:g}s"
    return _confirm(asked, wait=args.wait, read=read, why_not=why)


# -- Kubernetes -------------------------------------------------------------------------------


def _kube_mode(args: argparse.Namespace, *, reason: str, token: str) -> int:
    from gatectl.adapters.kube.client import RELEASEGATES, Resources, load_api_client
    from gatectl.adapters.kube.identity import whoami
    from gatectl.engine.kubestore import ANNOTATIONS

    api = load_api_client(kubeconfig=args.kubeconfig, context=args.context)
    gates = Resources(api, RELEASEGATES)
    who = whoami(api)
    namespace = args.namespace
    if args.workflow:
        listed = gates.list(namespace=namespace).items
        names = [
            str(o["metadata"]["name"])
            for o in listed
            if ((o.get("spec") or {}).get("workflow") or o["metadata"]["name"]) == args.workflow
        ]
        if not names:
            raise UsageError(f"no ReleaseGate of workflow {args.workflow} in namespace {namespace}")
    else:
        names = [args.gate]
    annotations = {
        ANNOTATIONS["fallback"]: token,
        ANNOTATIONS["fallback_by"]: who,
        ANNOTATIONS["fallback_reason"]: reason,
    }
    for name in names:
        try:
            gates.patch(name, {"metadata": {"annotations": annotations}}, namespace=namespace)
        except NotFoundError:
            raise UsageError(f"no ReleaseGate {namespace}/{name}") from None
    asked = _Asked([f"{namespace}/{name}" for name in names], token, who, reason)

    def read() -> dict[str, Mapping[str, Any]]:
        found: dict[str, Mapping[str, Any]] = {}
        for name in names:
            obj = gates.get(name, namespace=namespace)
            found[f"{namespace}/{name}"] = dict(obj.get("status") or {})
        return found

    why = f"the controller did not act within {args.wait:g}s (is it running?)"
    return _confirm(asked, wait=args.wait, read=read, why_not=why)
