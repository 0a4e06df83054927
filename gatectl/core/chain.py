"""The audit log's hash chain: canonical JSON, linking a record, verifying a log.

Each record of the decision log carries ``seq`` (1, 2, 3, ... with no gap) and
``prev``: the SHA-256 of the previous record's canonical JSON (keys sorted, no
spaces, UTF-8; ``null`` for seq 1). Changing any byte of a record changes its
hash, which no longer matches the next record's ``prev``; removing, swapping or
repeating records breaks the ``seq`` sequence. What a log alone cannot show is
a cut *tail* (the newest records removed, or the very last one edited): for
that the chain head — the seq and hash of the newest record — is kept
elsewhere (each gate's status, the ``gatectl_audit_chain_head`` metric) and
given to :func:`verify` as ``heads``.

Pure: no I/O; the CLI reads the file and prints the verdict.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "KINDS",
    "Broken",
    "Head",
    "Verdict",
    "canonical",
    "digest",
    "link",
    "parse_head",
    "short",
    "verify",
]

KINDS = ("edited", "removed", "reordered", "duplicated", "truncated")
"""What a broken link can be (``Broken.kind``)."""

_HEX = re.compile(r"[0-9a-f]{64}")


def canonical(record: Mapping[str, Any]) -> bytes:
    """The canonical JSON of a record: keys sorted, no spaces, UTF-8, no NaN or infinity."""
    text = json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text.encode("utf-8")


def digest(record: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a record's canonical JSON: what the next record's ``prev`` holds."""
    return hashlib.sha256(canonical(record)).hexdigest()


def short(sha256: str | None) -> str:
    """The first 12 hex digits of a hash, for messages."""
    return "null" if sha256 is None else sha256[:12]


@dataclass(frozen=True)
class Head:
    """The newest record of a chain (or the one a gate's status points at)."""

    seq: int
    sha256: str
    source: str = "--head"
    """Where this head was read from (for messages)."""

    def render(self) -> str:
        """``SEQ:SHA256``, the form ``gatectl audit verify --head`` takes."""
        return f"{self.seq}:{self.sha256}"


def parse_head(text: str, *, source: str = "--head") -> Head:
    """``SEQ:SHA256`` (as ``gatectl status``, the metric and ``audit verify`` print it)."""
    seq, sep, sha = text.strip().partition(":")
    if not sep or not seq.isascii() or not seq.isdigit() or int(seq) < 1:
        raise ValueError(f"expected SEQ:SHA256 (e.g. 42:{'ab' * 4}...), got {text[:40]!r}")
    if not _HEX.fullmatch(sha):
        raise ValueError(f"expected 64 lowercase hex digits after {seq}:, got {sha[:20]!r}")
    return Head(int(seq), sha, source)


def link(body: Mapping[str, Any], *, head: Head | None) -> tuple[dict[str, Any], Head]:
    """``body`` as the record after ``head`` (``seq``, ``prev`` added), and the new head."""
    record = {**body, "seq": head.seq + 1 if head else 1, "prev": head.sha256 if head else None}
    new = Head(int(record["seq"]), digest(record), "log")
    return record, new


@dataclass(frozen=True)
class Broken:
    """The first broken link of a log: where (1-based line), what kind, and why."""

    line: int
    kind: str
    message: str


@dataclass(frozen=True)
class Verdict:
    """The result of :func:`verify`: how many records, the head, and the first broken link."""

    records: int
    head: Head | None
    broken: Broken | None = None
    checked_heads: int = 0
    """Heads given from outside the log that matched it."""

    @property
    def intact(self) -> bool:
        """True when no link is broken."""
        return self.broken is None


@dataclass
class _Line:
    number: int
    record: dict[str, Any] | None
    problem: str | None = None

    @property
    def seq(self) -> int | None:
        seq = (self.record or {}).get("seq")
        return seq if type(seq) is int else None


def _parse(number: int, raw: bytes | str, *, last: bool) -> _Line:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    whole = text.endswith("\n")
    text = text.rstrip("\r\n")
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        if last and not whole:
            return _Line(number, None, "cut")
        return _Line(number, None, "not a JSON object")
    line = _Line(number, body)
    if line.seq is None:
        line.problem = "no whole-number seq"
    elif "prev" not in body or not (body["prev"] is None or isinstance(body["prev"], str)):
        line.problem = "no prev (a hash or null)"
    else:
        try:
            canonical(body)
        except ValueError:
            line.problem = "a number JSON cannot hold (NaN or infinity)"
    return line


def verify(lines: Sequence[bytes | str], *, heads: Sequence[Head] = ()) -> Verdict:
    """Check a log's chain (``lines`` as read, newlines kept) against ``heads`` if any.

    Reports the first broken link only: a record edited, records removed (a gap
    in ``seq``, or a log that does not start at 1), reordered or duplicated,
    a last line cut short, or — against a head kept outside the log — records
    cut from the tail or the newest one edited.
    """
    parsed = [_parse(n, raw, last=n == len(lines)) for n, raw in enumerate(lines, 1)]
    where: dict[int, list[int]] = {}
    for line in parsed:
        if line.seq is not None:
            where.setdefault(line.seq, []).append(line.number)
    wanted = {h.seq for h in heads}
    hashes: dict[int, str] = {}
    previous: _Line | None = None
    previous_hash: str | None = None
    earlier: Head | None = None  # the record before ``previous``
    for index, line in enumerate(parsed):
        if line.problem == "cut":
            return _verdict(
                previous,
                previous_hash,
                line.number,
                "truncated",
                f"line {line.number} is cut short (the last record was not written whole)",
            )
        if line.problem is not None or line.record is None or line.seq is None:
            return _verdict(
                previous,
                previous_hash,
                line.number,
                "edited",
                f"line {line.number} was edited: {line.problem}",
            )
        broken = _sequence(line, previous, previous_hash, where)
        if broken is not None:
            return _verdict(previous, previous_hash, line.number, broken[0], broken[1])
        if line.record["prev"] != previous_hash:
            following = parsed[index + 1] if index + 1 < len(parsed) else None
            at, message = _mismatch(line, previous, previous_hash, following, heads)
            if previous is not None and at == previous.number:
                return Verdict(at - 1, earlier, Broken(at, "edited", message))
            return _verdict(previous, previous_hash, line.number, "edited", message, at=at)
        if previous is not None:
            earlier = Head(previous.seq or 0, previous_hash or "", "log")
        previous, previous_hash = line, digest(line.record)
        if line.seq in wanted:
            hashes[line.seq] = previous_hash
    head = Head(previous.seq or 0, previous_hash or "", "log") if previous else None
    return _against_heads(len(parsed), head, hashes, heads)


def _verdict(
    previous: _Line | None,
    previous_hash: str | None,
    number: int,
    kind: str,
    message: str,
    *,
    at: int | None = None,
) -> Verdict:
    """Broken at line ``number`` (the damage itself at line ``at`` when known)."""
    good = Head(previous.seq or 0, previous_hash or "", "log") if previous else None
    return Verdict(number - 1, good, Broken(at or number, kind, message))


def _sequence(
    line: _Line,
    previous: _Line | None,
    previous_hash: str | None,
    where: Mapping[int, list[int]],
) -> tuple[str, str] | None:
    """A break in ``seq`` at ``line``: (kind, message), or ``None``."""
    seq = line.seq or 0
    expected = (previous.seq or 0) + 1 if previous else 1
    if seq == expected:
        return None
    n = line.number
    if (line.record or {}).get("prev") == previous_hash:
        # It links to the record before it: its own seq was changed.
        return "edited", f"line {n} was edited: seq {seq} where seq {expected} was expected"
    earlier = [at for at in where.get(seq, []) if at < n]
    if earlier:
        return "duplicated", f"line {n} repeats seq {seq} of line {earlier[0]}"
    later = [at for at in where.get(expected, []) if at > n]
    if later:
        return (
            "reordered",
            f"line {n} has seq {seq} where seq {expected} was expected; seq {expected} is at"
            f" line {later[0]}: records were reordered",
        )
    if seq > expected:
        missing = seq - expected
        span = f"seq {expected}" if missing == 1 else f"seq {expected}-{seq - 1}"
        records = f"{missing} record{'s' if missing > 1 else ''} removed"
        if previous is None:
            return "removed", f"{span} missing: the log starts at seq {seq} ({records})"
        return "removed", f"{span} missing between line {n - 1} and line {n}: {records}"
    return "edited", f"line {n} was edited: seq {seq} where seq {expected} was expected"


def _mismatch(
    line: _Line,
    previous: _Line | None,
    previous_hash: str | None,
    following: _Line | None,
    heads: Sequence[Head],
) -> tuple[int, str]:
    """Which line changed, and how: the previous record, or ``line`` itself."""
    assert line.record is not None
    n, seq, own = line.number, line.seq, digest(line.record)
    if previous is None:
        return n, f"line {n} (seq {seq}) was edited: the first record's prev must be null"
    confirmed = (following is not None and (following.record or {}).get("prev") == own) or any(
        h.seq == seq and h.sha256 == own for h in heads
    )
    if confirmed or following is None:
        return previous.number, (
            f"line {previous.number} (seq {previous.seq}) was edited: its SHA-256 is"
            f" {short(previous_hash)}, but line {n} (seq {seq}) says prev"
            f" {short(line.record['prev'])}"
        )
    return n, (
        f"line {n} (seq {seq}) was edited: its prev {short(line.record['prev'])} is not the"
        f" SHA-256 of line {previous.number} ({short(previous_hash)}), and its own SHA-256"
        " is not the next record's prev"
    )


def _against_heads(
    records: int, head: Head | None, hashes: Mapping[int, str], heads: Sequence[Head]
) -> Verdict:
    """The intact log checked against heads kept outside it (newest record first)."""
    for expected in sorted(heads, key=lambda h: -h.seq):
        if head is None or expected.seq > head.seq:
            last = f"ends at seq {head.seq} (line {records})" if head else "is empty"
            cut = expected.seq - (head.seq if head else 0)
            return Verdict(
                records,
                head,
                Broken(
                    records + 1,
                    "truncated",
                    f"the log {last}, but {expected.source} has seq {expected.seq}:"
                    f" {cut} record{'s' if cut > 1 else ''} cut from the tail",
                ),
            )
        found = hashes.get(expected.seq)
        if found != expected.sha256:
            line = expected.seq  # an intact log has seq n on line n
            return Verdict(
                records,
                head,
                Broken(
                    line,
                    "edited",
                    f"line {line} (seq {expected.seq}) was edited: its SHA-256 is"
                    f" {short(found)}, {expected.source} says {short(expected.sha256)}",
                ),
            )
    return Verdict(records, head, None, checked_heads=len(heads))
