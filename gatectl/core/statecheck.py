"""Whether a stored gate status can be trusted, and what a gate is held at when it cannot.

File mode keeps each gate's status on disk, where it can be edited by hand,
truncated, restored from an old backup or damaged. A stored status is used
only if its checksum matches, it has the shape ``GateStatus.to_dict`` writes
(types, ranges, RFC 3339 times neither before 2020 nor in the future), its
step agrees with its share, and it agrees with the records kept beside it:
the journal of committed steps and the ``file`` actuator's traffic file.
Otherwise the gate is *held*: not evaluated and never moved up, at the last
share the journal or the traffic file shows (0 after a fallback), until a
human runs ``gatectl reset``. Pure: the store reads the bytes, this judges them.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from gatectl.core.observations import PHASES

__all__ = [
    "FLOOR",
    "ROLLOUT_FIELDS",
    "SKEW",
    "Hold",
    "Traffic",
    "canonical",
    "checksum",
    "hold_for",
    "journal_record",
    "judge",
    "record_problem",
    "record_steps",
    "requests_problem",
    "same_step",
    "status_problem",
    "steps_problem",
    "traffic_from_text",
]

FLOOR = datetime(2020, 1, 1, tzinfo=UTC)
"""No stored time is older than this: a ``1970-01-01`` is a zeroed field, not a rollout."""
SKEW = timedelta(minutes=10)
"""How far in the future a stored time may be (clocks of two machines disagree)."""
ROLLOUT_FIELDS = ("step", "share", "stepStartedAt", "revision", "fallenBack")
"""A status with none of these records no rollout (an invalid policy's ``phase``/``message``)."""

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})\Z")
_Check = Callable[[Any], str | None]


def canonical(body: Any) -> str:
    """The one JSON text of ``body`` that its checksum is computed over."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def checksum(text: str) -> str:
    """SHA-256 of ``text`` (hex)."""
    return hashlib.sha256(text.encode("ascii", "backslashreplace")).hexdigest()


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        type(value), "null" if value is None else f"a {type(value).__name__}"
    )


def _short(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, str | int | float | bool) else _kind(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _integer(minimum: int) -> _Check:
    def check(value: Any) -> str | None:
        if type(value) is not int:
            return f"expected an integer, got {_kind(value)}"
        return None if value >= minimum else f"{value} is below {minimum}"

    return check


def _share(value: Any) -> str | None:
    if type(value) not in (int, float):
        return f"expected a number, got {_kind(value)}"
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        return f"{_short(value)} is not a share between 0 and 1"
    return None


def _typed(*types: type) -> _Check:
    def check(value: Any) -> str | None:
        if type(value) in types or (dict in types and isinstance(value, Mapping)):
            return None
        wanted = " or ".join(_kind(t()) if t is not dict else "an object" for t in types)
        return f"expected {wanted}, got {_kind(value)}"

    return check


def _objects(value: Any) -> str | None:
    if not isinstance(value, list):
        return f"expected a list, got {_kind(value)}"
    bad = [i for i, item in enumerate(value) if not isinstance(item, Mapping)]
    return f"item {bad[0]}: expected an object, got {_kind(value[bad[0]])}" if bad else None


def _phase(value: Any) -> str | None:
    if value in PHASES:
        return None
    return f"{_short(value)} is not a phase ({', '.join(PHASES)})"


def parse_stored_time(value: Any, *, now: datetime) -> tuple[datetime | None, str | None]:
    """A stored RFC 3339 time, or why it is not one (old, in the future, malformed)."""
    if not isinstance(value, str) or not _RFC3339.match(value):
        return None, f"{_short(value)} is not an RFC 3339 time (2026-11-20T12:00:00Z)"
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None, f"{_short(value)} is not a valid time"
    if moment < FLOOR:
        return None, f"{value} is before {FLOOR:%Y-%m-%d}: not a real rollout time"
    if moment > now + SKEW:
        return None, f"{value} is in the future (now {now:%Y-%m-%dT%H:%M:%SZ})"
    return moment, None


_FIELDS: tuple[tuple[str, bool, _Check], ...] = (
    ("step", True, _integer(0)),
    ("share", True, _share),
    ("revision", True, _typed(str)),
    ("fallenBack", True, _typed(bool)),
    ("phase", False, _phase),
    ("inconclusiveCount", False, _integer(0)),
    ("history", False, _objects),
    ("conditions", False, _objects),
    ("lastDecision", False, _typed(dict)),
    ("observedGeneration", False, _integer(0)),
    ("lastReset", False, _typed(str)),
    ("lastApproval", False, _typed(str)),
    ("message", False, _typed(str)),
)
_PENDING: tuple[tuple[str, bool, _Check], ...] = (
    ("step", True, _integer(0)),
    ("share", True, _share),
    ("fallenBack", True, _typed(bool)),
    ("action", False, _typed(str)),
)


def _fields(body: Mapping[str, Any], table: Any, prefix: str) -> str | None:
    for name, required, check in table:
        if name not in body or body[name] is None:
            if required:
                return f"{prefix}{name}: required field missing"
            continue
        problem = check(body[name])
        if problem:
            return f"{prefix}{name}: {problem}"
    return None


def status_problem(body: Any, *, now: datetime) -> str | None:
    """The first thing wrong with a stored status (``field: message``), or ``None``."""
    if not isinstance(body, Mapping):
        return f"expected an object, got {_kind(body)}"
    problem = _fields(body, _FIELDS, "")
    if problem:
        return problem
    started, problem = parse_stored_time(body.get("stepStartedAt"), now=now)
    if problem or started is None:
        return f"stepStartedAt: {problem}"
    if body.get("rolloutStartedAt") is not None:
        rollout, problem = parse_stored_time(body["rolloutStartedAt"], now=now)
        if problem or rollout is None:
            return f"rolloutStartedAt: {problem}"
        if started < rollout:
            return f"stepStartedAt: {body['stepStartedAt']} is before the rollout started"
    step, share, fallen = body["step"], body["share"], body["fallenBack"]
    if (step == 0 and share != 0) or (share == 0 and not fallen):
        return (
            f"step {step} at share {share:g} with fallenBack {str(fallen).lower()}:"
            " only a fallen-back gate is at step 0 or share 0"
        )
    pending = body.get("pending")
    if pending is not None:
        if not isinstance(pending, Mapping):
            return f"pending: expected an object, got {_kind(pending)}"
        problem = _fields(pending, _PENDING, "pending.")
        if problem:
            return problem
        if pending.get("decidedAt") is not None:
            _, problem = parse_stored_time(pending["decidedAt"], now=now)
            if problem:
                return f"pending.decidedAt: {problem}"
    return None


def steps_problem(body: Mapping[str, Any], steps: Sequence[float]) -> str | None:
    """A (valid) status whose step and share disagree with ``steps``, or ``None``.

    ``share`` is ``steps[step - 1]``, or, when the steps were edited mid-rollout
    and the share is none of them, ``step`` is the last step at or below it.
    """
    step, share = body["step"], body["share"]
    if step == 0:
        return None
    if step > len(steps):
        return f"step: {step} is beyond the gate's {len(steps)} steps"
    if share == steps[step - 1]:
        return None
    realigned = max(1, sum(1 for s in steps if s <= share))
    if share not in steps and step == realigned:
        return None
    shown = ", ".join(f"{s:g}" for s in steps)
    return f"share: {share:g} does not match step {step} of the steps [{shown}]"


def requests_problem(body: Any) -> str | None:
    """The first thing wrong with stored requests (approve, reset, fallback, paused); else None."""
    if not isinstance(body, Mapping):
        return f"expected an object, got {_kind(body)}"
    tables = {
        "approve": (("step", True, _integer(1)), ("by", False, _typed(str))),
        "reset": (("token", True, _typed(str)), ("by", False, _typed(str))),
        "fallback": (
            ("token", True, _typed(str)),
            ("by", False, _typed(str)),
            ("reason", False, _typed(str)),
        ),
    }
    for name, table in tables.items():
        part = body.get(name)
        if part is None:
            continue
        if not isinstance(part, Mapping):
            return f"{name}: expected an object, got {_kind(part)}"
        problem = _fields(part, (*table, ("at", False, _typed(str))), f"{name}.")
        if problem:
            return problem
    if "paused" in body and type(body["paused"]) is not bool:
        return f"paused: expected a boolean, got {_kind(body['paused'])}"
    return None


def journal_record(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the journal keeps of a status: the step it committed, and the one pending."""
    pending = body.get("pending")
    return {
        "revision": body.get("revision"),
        "step": body.get("step"),
        "share": body.get("share"),
        "fallenBack": body.get("fallenBack"),
        "stepStartedAt": body.get("stepStartedAt"),
        "pending": (
            {k: pending.get(k) for k in ("step", "share", "fallenBack")}
            if isinstance(pending, Mapping)
            else None
        ),
    }


def record_problem(record: Any) -> str | None:
    """The first thing wrong with a journal record read back, or ``None``."""
    if not isinstance(record, Mapping):
        return f"expected an object, got {_kind(record)}"
    problem = _fields(record, _FIELDS[:4], "")
    if problem:
        return problem
    pending = record.get("pending")
    if pending is not None:
        if not isinstance(pending, Mapping):
            return f"pending: expected an object, got {_kind(pending)}"
        problem = _fields(pending, _PENDING[:3], "pending.")
        if problem:
            return problem
    steps = record.get("steps")
    if steps is not None and (
        not isinstance(steps, list) or not steps or any(_share(s) for s in steps)
    ):
        return "steps: expected a list of shares"
    return None


def record_steps(
    body: Mapping[str, Any], current: Sequence[float] | None, previous: Sequence[float] | None
) -> list[float] | None:
    """The steps a status is written under: the gate's, else the last record's, else none.

    A pending step decided before the steps were edited is committed under the
    steps it was decided with; a status that fits neither is not checked against
    steps when read back (its checksum and the journal still are).
    """
    for steps in (current, previous):
        if steps and status_problem_free(body) and steps_problem(body, steps) is None:
            return list(steps)
    return None


def status_problem_free(body: Mapping[str, Any]) -> bool:
    """The fields ``steps_problem`` reads are there and typed."""
    return _fields(body, _FIELDS[:4], "") is None


def same_step(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Two journal records of the same committed (and pending) step."""
    keys = ("revision", "step", "share", "fallenBack", "stepStartedAt", "pending")
    return all(a.get(k) == b.get(k) for k in keys)


@dataclass(frozen=True)
class Traffic:
    """What the ``file`` actuator shows: ``none`` (not a file gate), missing, unreadable, share."""

    kind: str = "none"
    share: float | None = None


def traffic_from_text(text: str) -> Traffic:
    """The share in a traffic file's text, or ``unreadable``."""
    try:
        body = json.loads(text)
    except ValueError:
        return Traffic("unreadable")
    share = body.get("share") if isinstance(body, dict) else None
    if share is None or _share(share) is not None:
        return Traffic("unreadable")
    return Traffic("share", float(share))


@dataclass(frozen=True)
class Hold:
    """A gate whose stored state is not trusted: why, and the share it stays at."""

    problem: str
    share: float | None
    """The last known safe share; ``None``: no record of it (traffic left where it is)."""
    basis: str
    lower_to: float | None = None
    """Set traffic to this (always below what it shows, or 0 where the file is gone)."""

    def message(self, *, file: str, gate: str) -> str:
        """``state.db: gate triage: PROBLEM; holding at share 0.1 (...) until `gatectl reset```."""
        where = (
            f"holding at share {self.share:g} ({self.basis})"
            if self.share is not None
            else "holding, traffic left where it is (no record of its share)"
        )
        return f"{file}: gate {gate}: {self.problem}; {where} until `gatectl reset`"


def hold_for(problem: str, *, journal: Sequence[Mapping[str, Any]], traffic: Traffic) -> Hold:
    """Hold at the lowest share the newest journal record or the traffic file shows."""
    share: float | None = None
    basis = ""
    if journal:
        last = journal[0]
        share, fallen = float(last["share"]), bool(last["fallenBack"])
        pending = last.get("pending")
        if pending:
            share, fallen = min(share, float(pending["share"])), fallen or pending["fallenBack"]
        basis = "fallen back" if fallen else "last committed step"
    if traffic.share is not None and (share is None or traffic.share < share):
        share, basis = traffic.share, "what its traffic file shows"
    lower: float | None = None
    if traffic.share is not None and share is not None and traffic.share > share:
        lower = share
    elif traffic.kind in ("missing", "unreadable") and share == 0.0:
        lower = 0.0
    return Hold(problem, share, basis, lower)


def judge(
    *,
    text: str | None,
    digest: str | None,
    journal: Sequence[Mapping[str, Any]],
    traffic: Traffic,
    steps: Sequence[float] | None,
    now: datetime,
) -> Mapping[str, Any] | Hold | None:
    """A stored status that can be used (``None``: nothing stored yet), or a hold.

    ``journal`` holds the gate's verified journal records, newest first. The
    step is checked against the steps the newest record was written under, or,
    without a journal (a state file of the previous format), the gate's own
    ``steps`` (``None``: not checked, as ``gatectl status`` does not know them).
    """

    def hold(problem: str) -> Hold:
        return hold_for(problem, journal=journal, traffic=traffic)

    body: Any = None
    if text is not None:
        if digest != checksum(text):
            return hold("stored status fails its checksum")
        try:
            body = json.loads(text)
        except ValueError:
            return hold("stored status is not valid JSON")
    if body is not None and not isinstance(body, Mapping):
        return hold(f"stored status: {status_problem(body, now=now)}")
    if body is None or not any(k in body for k in ROLLOUT_FIELDS):
        if journal:
            return hold("no stored status, but the journal records a rollout")
        if traffic.kind in ("share", "unreadable"):
            return hold("no stored status, but its traffic file exists")
        return body  # no rollout yet (or only an invalid policy's phase and message)
    problem = status_problem(body, now=now)
    if problem:
        return hold(f"stored status: {problem}")
    if journal and not same_step(journal_record(body), journal[0]):
        last = journal[0]
        return hold(
            f"stored status (step {body['step']}, share {body['share']:g}) does not match"
            f" the journal's last committed step (step {last['step']}, share {last['share']:g})"
        )
    if journal:
        steps = journal[0].get("steps")
    if steps is not None:
        problem = steps_problem(body, steps)
        if problem:
            return hold(f"stored status: {problem}")
    pending = body.get("pending")
    if (
        traffic.share is not None
        and traffic.share < body["share"]
        and not (pending and traffic.share == pending["share"])
    ):
        return hold(
            f"its traffic file shows share {traffic.share:g}, below the stored share"
            f" {body['share']:g} (restored or edited state?)"
        )
    return body
