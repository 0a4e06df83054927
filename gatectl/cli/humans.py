"""The human side of the controller: ``gatectl status | approve | reset | pause | resume``.

Each works on Kubernetes (annotations on the ReleaseGate, read back from its
status) or, with ``--state-file``, on file mode's state store (one transaction
per request, so the running controller never loses it). A gate whose stored
state cannot be trusted is shown held, with the reason, and cannot be approved.
"""

from __future__ import annotations

import argparse
import os
import pwd
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from gatectl.errors import NotFoundError, UsageError

__all__ = ["add_parsers", "render_status_table"]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state-file", metavar="FILE", help="file mode: the controller's state file")
    p.add_argument("--kubeconfig", metavar="FILE", help="Kubernetes: default in-cluster/~/.kube")
    p.add_argument("--context", metavar="NAME")
    p.add_argument("--namespace", "-n", default="default", metavar="NS")


def add_parsers(sub: argparse._SubParsersAction[Any]) -> None:
    """Register status, approve, reset, pause and resume."""
    p = sub.add_parser("status", help="list gates with their step, share, phase and decision")
    _common(p)
    p.add_argument("--all-namespaces", "-A", action="store_true")
    p.add_argument("--output", "-o", choices=("table", "json"), default="table")
    p.set_defaults(func=_status)

    p = sub.add_parser(
        "approve", help="approve promotion of GATE to its next step (approval.required_above)"
    )
    _common(p)
    p.add_argument("gate", metavar="GATE")
    p.add_argument(
        "--by",
        default=None,
        help="who approves; may only repeat who you are: the account running the command"
        " (file mode) or who your credentials say (Kubernetes, SelfSubjectReview),"
        " never a typed name. Optional",
    )
    p.add_argument("--step", type=int, default=None, help="the step approved (default: next)")
    p.set_defaults(func=_approve)

    p = sub.add_parser(
        "reset", help="clear a fallback: GATE starts again at step 1 with a new window"
    )
    _common(p)
    p.add_argument("gate", metavar="GATE")
    p.add_argument(
        "--by",
        default=None,
        help="who resets; as for approve, may only repeat who you are. Optional",
    )
    p.set_defaults(func=_reset)

    for name, paused in (("pause", True), ("resume", False)):
        p = sub.add_parser(
            name,
            help="stop evaluating GATE (traffic stays as it is)"
            if paused
            else "evaluate GATE again after a pause",
        )
        _common(p)
        p.add_argument("gate", metavar="GATE")
        p.set_defaults(func=_pause, paused=paused)


def unix_user() -> str:
    """The account running the command, as the OS says (not ``$USER``, which anyone can set)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return f"uid {os.getuid()}"


def _file_actor(args: argparse.Namespace) -> str:
    """File mode: the account running the command; ``--by`` may only repeat it."""
    who = unix_user()
    if args.by and args.by != who:
        raise UsageError(
            f"--by {args.by[:60]!r}: in file mode the actor is the account running the"
            f" command ({who}); --by may only repeat it"
        )
    return who


def _now() -> str:
    # Microseconds: an approval must be told apart from a rollout begun the same second.
    from gatectl.core.timeparse import format_time

    return format_time(datetime.now(UTC))


# -- file mode ------------------------------------------------------------------------------


def _file_entry(args: argparse.Namespace, change: Any) -> None:
    """Edit one gate's requests in the state store, in one transaction.

    ``change(requests, stored)`` edits the requests dict in place (it starts
    empty when the stored one is damaged) and may return a hold record to keep.
    """
    from gatectl.core.statecheck import canonical
    from gatectl.engine.statestore import StateStore
    from gatectl.engine.stored import describe

    if not os.path.exists(args.state_file):
        raise UsageError(f"{args.state_file}: no state store here (has `gatectl run` run?)")
    state = StateStore(args.state_file)
    key = args.gate if "/" in args.gate else f"{args.namespace}/{args.gate}"
    try:
        journal = state.journal([key]).get(key, [])

        def edit(row: Any) -> tuple[dict[str, Any], str | None]:
            stored = describe(row, journal, file=state.name, now=datetime.now(UTC))
            requests = dict(stored.requests)
            hold = change(requests, stored)
            return requests, canonical(hold) if hold else None

        state.update_requests(key, edit)
    finally:
        state.close()


# -- Kubernetes -------------------------------------------------------------------------------


def _gates(args: argparse.Namespace) -> Any:
    from gatectl.adapters.kube.client import RELEASEGATES, Resources, load_api_client

    return Resources(
        load_api_client(kubeconfig=args.kubeconfig, context=args.context), RELEASEGATES
    )


def _kube_actor(args: argparse.Namespace) -> str:
    """The caller's authenticated username; ``--by`` may only repeat it."""
    from gatectl.adapters.kube.client import load_api_client
    from gatectl.adapters.kube.identity import whoami

    who = whoami(load_api_client(kubeconfig=args.kubeconfig, context=args.context))
    if args.by and args.by != who:
        raise UsageError(
            f"--by {args.by[:60]!r}: on Kubernetes the actor is who your credentials say"
            f" ({who}); --by may only repeat it"
        )
    return who


def _annotate(args: argparse.Namespace, annotations: Mapping[str, str | None]) -> None:
    gates = _gates(args)
    try:
        gates.patch(
            args.gate, {"metadata": {"annotations": dict(annotations)}}, namespace=args.namespace
        )
    except NotFoundError:
        raise UsageError(f"no ReleaseGate {args.namespace}/{args.gate}") from None


def _kube_status(args: argparse.Namespace) -> Mapping[str, Any]:
    try:
        obj = _gates(args).get(args.gate, namespace=args.namespace)
    except NotFoundError:
        raise UsageError(f"no ReleaseGate {args.namespace}/{args.gate}") from None
    return dict(obj.get("status") or {})


# -- commands -------------------------------------------------------------------------------


def _approve(args: argparse.Namespace) -> int:
    at = _now()
    if args.state_file:
        by = _file_actor(args)
        said: list[str] = []

        def change(requests: dict[str, Any], stored: Any) -> None:
            if stored.held:
                raise UsageError(f"{stored.held}; approving it does nothing until it is reset")
            step = args.step or int(stored.status.get("step", 0)) + 1
            requests["approve"] = {"step": step, "by": by, "at": at}
            said.append(f"approved {args.gate}: promotion into step {step} (by {by})")

        _file_entry(args, change)
        print(*said)
        return 0
    from gatectl.engine.kubestore import ANNOTATIONS

    by = _kube_actor(args)
    step = args.step or int(_kube_status(args).get("step", 0)) + 1
    _annotate(
        args,
        {
            ANNOTATIONS["approved_step"]: str(step),
            ANNOTATIONS["approved_by"]: by,
            ANNOTATIONS["approved_at"]: at,
        },
    )
    print(f"approved {args.namespace}/{args.gate}: promotion into step {step} (by {by})")
    return 0


def _reset(args: argparse.Namespace) -> int:
    token = _now()
    if args.state_file:
        by = _file_actor(args)

        def change(requests: dict[str, Any], stored: Any) -> dict[str, Any] | None:
            previous = (requests.get("reset") or {}).get("token")
            requests["reset"] = {"token": token, "by": by}
            if stored.held and stored.hold is None:
                # The controller has not recorded this hold yet: this reset is newer.
                return {"message": stored.held, "resetToken": previous, "since": token}
            return None

        _file_entry(args, change)
    else:
        from gatectl.engine.kubestore import ANNOTATIONS

        by = _kube_actor(args)
        _annotate(args, {ANNOTATIONS["reset"]: token, ANNOTATIONS["reset_by"]: by})
    print(f"reset requested for {args.gate} by {by}: it restarts at step 1 on the next pass")
    return 0


def _pause(args: argparse.Namespace) -> int:
    if args.state_file:

        def change(requests: dict[str, Any], stored: Any) -> None:
            requests["paused"] = args.paused

        _file_entry(args, change)
    else:
        from gatectl.engine.kubestore import ANNOTATIONS

        _annotate(args, {ANNOTATIONS["paused"]: "true" if args.paused else None})
    print(f"{'paused' if args.paused else 'resumed'} {args.gate}")
    return 0


def _age(text: str | None, now: datetime) -> str:
    if not text:
        return "-"
    try:
        from gatectl.core.timeparse import parse_time

        seconds = (now - parse_time(text, now=now)).total_seconds()
    except ValueError:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{max(0, int(seconds))}s"


def render_status_table(rows: list[tuple[str, str, Mapping[str, Any]]], *, now: datetime) -> str:
    """``kubectl get``-style lines, one per gate."""
    table = [("NAMESPACE", "NAME", "STEP", "SHARE", "PHASE", "DECISION", "SINCE", "MESSAGE")]
    for namespace, name, status in rows:
        last = status.get("lastDecision") or {}
        share = status.get("share")
        table.append(
            (
                namespace,
                name,
                str(status.get("step", "-")),
                f"{float(share) * 100:g}%" if share is not None else "-",
                str(status.get("phase", "Pending")),
                str(last.get("action", "-")),
                _age(status.get("stepStartedAt"), now),
                str(status.get("message") or "")[:80],
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return "\n".join(
        "   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table
    )


def _status(args: argparse.Namespace) -> int:
    import json

    now = datetime.now(UTC)
    rows: list[tuple[str, str, Mapping[str, Any]]] = []
    held: list[str] = []
    if args.state_file:
        from gatectl.engine.statestore import StateStore
        from gatectl.engine.stored import stored_gates

        state = StateStore(args.state_file, readonly=True)
        try:
            for stored in stored_gates(state, now=now):
                namespace, _, name = stored.key.partition("/")
                rows.append((namespace, name, stored.status))
                held += [stored.held] if stored.held else []
        finally:
            state.close()
        if state.legacy:
            print(
                f"gatectl: {args.state_file} is a JSON state file of the previous format;"
                " `gatectl run` migrates it",
                file=sys.stderr,
            )
    else:
        gates = _gates(args)
        listed = gates.list(namespace=None if args.all_namespaces else args.namespace)
        for obj in listed.items:
            meta = obj.get("metadata") or {}
            rows.append((meta.get("namespace", ""), meta.get("name", ""), obj.get("status") or {}))
    if args.output == "json":
        print(json.dumps([{"namespace": n, "name": g, "status": s} for n, g, s in rows], indent=2))
    elif not rows:
        print("no gates", file=sys.stderr)
    else:
        print(render_status_table(rows, now=now))
    for message in held:
        print(f"gatectl: {message}", file=sys.stderr)
    return 0
