"""``gatectl audit verify`` and ``gatectl audit show``: prove the decision log whole, read it.

``verify`` checks the hash chain of one log (or several files of one log, in
order, e.g. after rotation) and prints the first broken link: a record
edited, removed, reordered, duplicated, or the tail cut. A cut tail is only
visible against the chain head kept outside the log, given with ``--head``
(the ``gatectl_audit_chain_head`` metric, or ``status.audit`` of the gate
written last) or read from every gate's status with ``--state-file``.
``show`` prints the trail, one line per record, or the records as JSON.

Also here: the flags of ``gatectl run`` that choose the log's sinks.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gatectl.errors import UsageError

__all__ = ["EXIT_BROKEN", "add_parser", "add_run_flags", "read_log", "records"]

EXIT_BROKEN = 1
"""``audit verify``: the chain is broken (this command's own meaning of exit 1)."""

_VERIFY_EPILOG = """\
exit codes:
  0   the chain is intact (and matches every --head given)
  1   the chain is broken: the first broken link is printed (line, kind, why)
  2   invalid input: a missing file, a bad --head

Kinds: edited (a record changed), removed (records missing), reordered,
duplicated, truncated (the last line cut short, or records cut from the tail).

A log alone cannot show that its newest records were cut off: give the chain
head kept outside it, --head SEQ:SHA256 (from the gatectl_audit_chain_head
metric, or the newest status.audit of your gates), or --state-file in file
mode to check the log against every gate's status.audit.
"""


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """The decision log's flags of ``gatectl run``."""
    p.add_argument(
        "--audit-log",
        metavar="FILE",
        help="append the audit log (JSON Lines) to FILE; file mode default: STATE_FILE.audit.jsonl",
    )
    p.add_argument(
        "--audit-stdout", action="store_true", help="also write each audit record to stdout"
    )
    p.add_argument(
        "--audit-url",
        metavar="URL",
        help="also POST each audit record to URL as a CloudEvent (1.0, structured mode)",
    )
    p.add_argument(
        "--audit-header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="a header on every --audit-url request (repeatable; never logged)",
    )
    p.add_argument(
        "--audit-source",
        default="/gatectl",
        metavar="URI",
        help="the CloudEvents 'source' of the records (default /gatectl)",
    )
    p.add_argument(
        "--audit-buffer",
        metavar="DIR",
        help="where records wait for their sinks (default: AUDIT_LOG.buffer; needed without"
        " --audit-log)",
    )
    p.add_argument(
        "--audit-buffer-mib",
        type=int,
        default=256,
        metavar="MIB",
        help="the buffer's bound: past it the oldest undelivered records are dropped (and"
        " counted); default 256",
    )
    p.add_argument(
        "--audit-drain",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="on shutdown, wait this long for sinks to take what is buffered (the rest stays"
        " buffered for the next start); default 5",
    )


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    """Register ``gatectl audit verify|show``."""
    audit = sub.add_parser("audit", help="verify or show the decision log (audit trail)")
    commands = audit.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")
    p = commands.add_parser(
        "verify",
        help="check the log's hash chain; print the first broken link",
        description="Check the audit log's hash chain. FILE may be several files of one log,"
        " oldest first (after rotation); '-' reads standard input.",
        epilog=_VERIFY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument(
        "--head",
        action="append",
        default=[],
        metavar="SEQ:SHA256",
        help="a chain head kept outside the log (repeatable)",
    )
    p.add_argument("--state-file", metavar="FILE", help="file mode: check every gate's head")
    p.add_argument("--output", "-o", choices=("text", "json"), default="text")
    p.set_defaults(func=_verify)

    p = commands.add_parser("show", help="print the trail: who changed what, when and why")
    p.add_argument("gate", nargs="?", metavar="GATE", help="only this gate (NAME or NS/NAME)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--log", metavar="FILE", help="the audit log")
    where.add_argument("--state-file", metavar="FILE", help="file mode: the log beside it")
    p.add_argument("--since", metavar="TIME", help="RFC 3339, or relative: -24h")
    p.add_argument("--until", metavar="TIME", help="RFC 3339, or relative: -1h")
    p.add_argument("--output", "-o", choices=("text", "json"), default="text")
    p.set_defaults(func=_show)


# -- reading ---------------------------------------------------------------------------------


def read_log(files: list[str]) -> tuple[list[bytes], list[tuple[str, int]]]:
    """Every line of ``files`` in order, and where each came from (file, line)."""
    lines: list[bytes] = []
    origin: list[tuple[str, int]] = []
    for name in files:
        try:
            data = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
        except FileNotFoundError:
            raise UsageError(f"{name}: no such file") from None
        except OSError as exc:
            raise UsageError(f"{name}: cannot read: {exc.strerror or exc}") from None
        part = data.splitlines(keepends=True)
        lines += part
        origin += [(name, n) for n in range(1, len(part) + 1)]
    return lines, origin


def log_path(args: argparse.Namespace) -> str:
    """``--log``, else the file mode log beside ``--state-file``."""
    if args.log:
        return str(args.log)
    if args.state_file:
        return f"{args.state_file}.audit.jsonl"
    raise UsageError("which log? give --log FILE, or --state-file FILE in file mode")


def records(path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, record) of each record in the log; lines that are not records are skipped."""
    lines, _ = read_log([path])
    for number, raw in enumerate(lines, 1):
        try:
            body = json.loads(raw)
        except ValueError:
            print(
                f"gatectl: {path}:{number}: not a record (see gatectl audit verify)",
                file=sys.stderr,
            )
            continue
        if isinstance(body, dict):
            yield number, body


def _state_heads(state_file: str) -> list[Any]:
    from gatectl.core.chain import Head
    from gatectl.engine.statestore import StateStore
    from gatectl.engine.stored import stored_gates

    if not Path(state_file).exists():
        raise UsageError(f"{state_file}: no such file")
    state = StateStore(state_file, readonly=True)
    try:
        gates = stored_gates(state, now=datetime.now(UTC))
    finally:
        state.close()
    heads = []
    for stored in gates:
        head = stored.status.get("audit")
        if isinstance(head, Mapping) and type(head.get("seq")) is int:
            heads.append(Head(head["seq"], str(head.get("sha256")), f"the status of {stored.key}"))
    return heads


# -- verify ----------------------------------------------------------------------------------


def _verify(args: argparse.Namespace) -> int:
    from gatectl.core.chain import parse_head, verify

    heads = []
    for text in args.head:
        try:
            heads.append(parse_head(text))
        except ValueError as exc:
            raise UsageError(f"--head: {exc}") from None
    if args.state_file:
        heads += _state_heads(args.state_file)
    lines, origin = read_log(args.files)
    verdict = verify(lines, heads=heads)
    name = " + ".join(args.files)
    if args.output == "json":
        body: dict[str, Any] = {
            "intact": verdict.intact,
            "records": verdict.records,
            "head": verdict.head.render() if verdict.head else None,
            "heads_checked": verdict.checked_heads,
        }
        if verdict.broken is not None:
            where = origin[verdict.broken.line - 1] if verdict.broken.line <= len(origin) else None
            body["broken"] = {
                "file": where[0] if where else args.files[-1],
                "line": where[1] if where else verdict.broken.line,
                "kind": verdict.broken.kind,
                "message": verdict.broken.message,
            }
        print(json.dumps(body, indent=2))
        return 0 if verdict.intact else EXIT_BROKEN
    if verdict.broken is not None:
        broken = verdict.broken
        file, line = origin[broken.line - 1] if broken.line <= len(origin) else (name, broken.line)
        print(f"{file}:{line}: {broken.kind}: {broken.message}")
        good = f"intact up to seq {verdict.head.seq}" if verdict.head else "no intact record"
        print(f"{name}: broken ({good})")
        return EXIT_BROKEN
    if verdict.head is None:
        print(f"{name}: intact: empty")
        return 0
    print(f"{name}: intact: {verdict.records} records, head {verdict.head.render()}")
    if verdict.checked_heads:
        print(f"matches {verdict.checked_heads} chain head(s) kept outside the log")
    else:
        print(
            "note: a cut tail shows only against the chain head kept outside the log:"
            " pass --head SEQ:SHA256 (gatectl_audit_chain_head) or --state-file"
        )
    return 0


# -- show ------------------------------------------------------------------------------------


def _share(value: Any) -> str:
    return f"{float(value) * 100:g}%" if isinstance(value, int | float) else "-"


def render_line(record: Mapping[str, Any]) -> str:
    """One record as a line of the trail."""
    share = record.get("share") or {}
    moved = (
        f"{_share(share.get('before'))} -> {_share(share.get('after'))}"
        if share.get("before") != share.get("after")
        else f"at {_share(share.get('after'))}"
    )
    return (
        f"{record.get('time')}  #{record.get('seq')}  {record.get('namespace')}/"
        f"{record.get('gate')}  {record.get('action')}  {moved}  by {record.get('actor')}:"
        f" {str(record.get('reason') or '')[:200]}"
    )


def _matches(record: Mapping[str, Any], gate: str | None) -> bool:
    if gate is None:
        return True
    if "/" in gate:
        return f"{record.get('namespace')}/{record.get('gate')}" == gate
    return record.get("gate") == gate


def _when(text: str | None, flag: str, now: datetime) -> datetime | None:
    from gatectl.core.timeparse import parse_time

    if text is None:
        return None
    try:
        return parse_time(text, now=now)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None


def _show(args: argparse.Namespace) -> int:
    from gatectl.core.timeparse import parse_time

    now = datetime.now(UTC)
    since, until = _when(args.since, "--since", now), _when(args.until, "--until", now)
    chosen = []
    for _, record in records(log_path(args)):
        if not _matches(record, args.gate):
            continue
        try:
            at = parse_time(str(record.get("time")), now=now)
        except ValueError:
            at = None
        if at is not None and ((since and at < since) or (until and at > until)):
            continue
        chosen.append(record)
    if args.output == "json":
        print(json.dumps(chosen, indent=2, ensure_ascii=False))
    elif not chosen:
        print("no records", file=sys.stderr)
    else:
        for record in chosen:
            print(render_line(record))
    return 0
