"""Judging a stored status: schema, checksum, journal and traffic file; what a gate is held at."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gatectl.core.statecheck import (
    Hold,
    Traffic,
    canonical,
    checksum,
    hold_for,
    journal_record,
    judge,
    record_problem,
    record_steps,
    requests_problem,
    status_problem,
    steps_problem,
    traffic_from_text,
)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
STEPS = (0.05, 0.25, 1.0)
NO_TRAFFIC = Traffic()


def status(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "phase": "Progressing",
        "step": 2,
        "share": 0.25,
        "stepStartedAt": "2026-11-20T10:00:00Z",
        "rolloutStartedAt": "2026-11-19T10:00:00Z",
        "revision": "",
        "inconclusiveCount": 0,
        "fallenBack": False,
        "history": [],
        "conditions": [],
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not DROP}


DROP = object()
FALLEN = {"step": 0, "share": 0.0, "fallenBack": True, "phase": "FallenBack"}


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        pytest.param(status(), None, id="valid"),
        pytest.param(status(**FALLEN), None, id="valid-fallen-back"),
        pytest.param(status(rolloutStartedAt=DROP), None, id="valid-before-rollout-start-existed"),
        pytest.param(
            status(fallenBack=DROP), "fallenBack: required field missing", id="fallenback-missing"
        ),
        pytest.param(
            status(fallenBack="yes"),
            "fallenBack: expected a boolean, got a string",
            id="fallenback-string",
        ),
        pytest.param(status(step="2"), "step: expected an integer, got a string", id="step-string"),
        pytest.param(status(step=True), "step: expected an integer, got a boolean", id="step-bool"),
        pytest.param(status(step=2.0), "step: expected an integer, got a number", id="step-float"),
        pytest.param(status(step=-1), "step: -1 is below 0", id="step-negative"),
        pytest.param(status(share=1.5), "share: 1.5 is not a share between 0 and 1", id="share>1"),
        pytest.param(
            status(share=float("nan")),
            "share: NaN is not a share between 0 and 1",
            id="share-nan",
        ),
        pytest.param(
            status(share="0.25"), "share: expected a number, got a string", id="share-str"
        ),
        pytest.param(status(share=None), "share: required field missing", id="share-null"),
        pytest.param(status(revision=7), "revision: expected a string, got an integer", id="rev"),
        pytest.param(
            status(stepStartedAt="1970-01-01T00:00:00Z"),
            "stepStartedAt: 1970-01-01T00:00:00Z is before 2020-01-01: not a real rollout time",
            id="epoch-1970",
        ),
        pytest.param(
            status(stepStartedAt="2026-11-21T12:00:00Z"),
            "stepStartedAt: 2026-11-21T12:00:00Z is in the future (now 2026-11-20T12:00:00Z)",
            id="future",
        ),
        pytest.param(
            status(stepStartedAt="2026-11-20T12:05:00Z"), None, id="future-within-clock-skew"
        ),
        pytest.param(
            status(stepStartedAt="yesterday"),
            'stepStartedAt: "yesterday" is not an RFC 3339 time (2026-11-20T12:00:00Z)',
            id="not-a-date",
        ),
        pytest.param(
            status(stepStartedAt="-6h"),
            'stepStartedAt: "-6h" is not an RFC 3339 time (2026-11-20T12:00:00Z)',
            id="relative-time",
        ),
        pytest.param(
            status(stepStartedAt="2026-11-20T10:00:00"),
            'stepStartedAt: "2026-11-20T10:00:00" is not an RFC 3339 time (2026-11-20T12:00:00Z)',
            id="no-time-zone",
        ),
        pytest.param(
            status(stepStartedAt="2026-13-45T10:00:00Z"),
            'stepStartedAt: "2026-13-45T10:00:00Z" is not a valid time',
            id="month-13",
        ),
        pytest.param(
            status(stepStartedAt=1763632800),
            "stepStartedAt: 1763632800 is not an RFC 3339 time (2026-11-20T12:00:00Z)",
            id="unix-seconds",
        ),
        pytest.param(
            status(rolloutStartedAt="2026-11-20T11:00:00Z"),
            "stepStartedAt: 2026-11-20T10:00:00Z is before the rollout started",
            id="step-before-rollout",
        ),
        pytest.param(
            status(step=0),
            "step 0 at share 0.25 with fallenBack false: only a fallen-back gate is at step 0"
            " or share 0",
            id="step-0-with-share",
        ),
        pytest.param(
            status(step=0, share=0.0),
            "step 0 at share 0 with fallenBack false: only a fallen-back gate is at step 0"
            " or share 0",
            id="fallen-back-flag-lost",
        ),
        pytest.param(
            status(phase="Done"),
            'phase: "Done" is not a phase (Progressing, Holding,'
            " Promoted, FallenBack, Invalid, AwaitingApproval, Paused)",
            id="phase",
        ),
        pytest.param(
            status(history={"a": 1}), "history: expected a list, got a dict", id="history-dict"
        ),
        pytest.param(
            status(history=[{}, 3]),
            "history: item 1: expected an object, got an integer",
            id="item",
        ),
        pytest.param(
            status(inconclusiveCount=-3), "inconclusiveCount: -3 is below 0", id="count-negative"
        ),
        pytest.param(
            status(pending={"step": 3, "share": 1.0}),
            "pending.fallenBack: required field missing",
            id="pending-incomplete",
        ),
        pytest.param(
            status(pending={"step": 3, "share": 1.0, "fallenBack": False, "decidedAt": "x"}),
            'pending.decidedAt: "x" is not an RFC 3339 time (2026-11-20T12:00:00Z)',
            id="pending-bad-time",
        ),
        pytest.param(
            status(pending=[1]), "pending: expected an object, got a list", id="pending-list"
        ),
        pytest.param([1, 2], "expected an object, got a list", id="not-an-object"),
    ],
)
def test_status_problem_names_the_field_and_what_is_wrong(body: Any, problem: str | None) -> None:
    assert status_problem(body, now=NOW) == problem


@pytest.mark.parametrize(
    ("body", "steps", "problem"),
    [
        pytest.param(status(), STEPS, None, id="at-step-2"),
        pytest.param(status(**FALLEN), STEPS, None, id="fallen-back"),
        pytest.param(
            status(step=1, share=0.05, fallenBack=True), STEPS, None, id="fallen-to-previous-step"
        ),
        pytest.param(status(step=99), STEPS, "step: 99 is beyond the gate's 3 steps", id="step-99"),
        pytest.param(
            status(step=3, share=0.25),
            STEPS,
            "share: 0.25 does not match step 3 of the steps [0.05, 0.25, 1]",
            id="step-ahead-of-share",
        ),
        pytest.param(
            status(step=1, share=1.0),
            STEPS,
            "share: 1 does not match step 1 of the steps [0.05, 0.25, 1]",
            id="share-ahead-of-step",
        ),
        pytest.param(status(step=2, share=0.5), (0.1, 0.3, 1.0), None, id="steps-edited-realigned"),
        pytest.param(
            status(step=1, share=0.05), (0.1, 0.3, 1.0), None, id="below-the-first-edited-step"
        ),
        pytest.param(
            status(step=1, share=0.5),
            (0.1, 0.3, 1.0),
            "share: 0.5 does not match step 1 of the steps [0.1, 0.3, 1]",
            id="edited-steps-wrong-step",
        ),
    ],
)
def test_step_must_agree_with_the_share(
    body: dict[str, Any], steps: tuple[float, ...], problem: str | None
) -> None:
    assert steps_problem(body, steps) == problem


def stored(body: Any) -> tuple[str, str]:
    text = canonical(body)
    return text, checksum(text)


def record(**changes: Any) -> dict[str, Any]:
    return {**journal_record(status(**changes)), "steps": list(STEPS)}


def run_judge(
    text: str | None,
    digest: str | None,
    *,
    journal: list[dict[str, Any]] | None = None,
    traffic: Traffic = NO_TRAFFIC,
    steps: tuple[float, ...] | None = STEPS,
) -> Any:
    return judge(
        text=text, digest=digest, journal=journal or [], traffic=traffic, steps=steps, now=NOW
    )


def test_a_valid_status_that_matches_its_journal_and_traffic_is_used() -> None:
    body = status()
    result = run_judge(*stored(body), journal=[record()], traffic=Traffic("share", 0.25))
    assert result == body


@pytest.mark.parametrize(
    ("text", "digest", "journal", "traffic", "expected"),
    [
        pytest.param(
            canonical(status(step=3, share=1.0)),
            stored(status())[1],
            [record()],
            Traffic("share", 0.25),
            Hold("stored status fails its checksum", 0.25, "last committed step"),
            id="checksum",
        ),
        pytest.param(
            "{not json",
            checksum("{not json"),
            [record(**FALLEN)],
            Traffic(),
            Hold("stored status is not valid JSON", 0.0, "fallen back"),
            id="not-json-fallen-back",
        ),
        pytest.param(
            *stored(status(stepStartedAt="1970-01-01T00:00:00Z")),
            [],
            Traffic("share", 0.25),
            Hold(
                "stored status: stepStartedAt: 1970-01-01T00:00:00Z is before 2020-01-01:"
                " not a real rollout time",
                0.25,
                "what its traffic file shows",
            ),
            id="epoch-held-at-traffic",
        ),
        pytest.param(
            *stored(status(step=3, share=1.0)),
            [record()],
            Traffic(),
            Hold(
                "stored status (step 3, share 1) does not match the journal's last committed"
                " step (step 2, share 0.25)",
                0.25,
                "last committed step",
            ),
            id="restored-backup-ahead-of-journal",
        ),
        pytest.param(
            *stored(status(step=99)),
            [],
            Traffic("missing"),
            Hold("stored status: step: 99 is beyond the gate's 3 steps", None, ""),
            id="step-99-previous-format",
        ),
        pytest.param(
            *stored(status()),
            [record()],
            Traffic("share", 0.0),
            Hold(
                "its traffic file shows share 0, below the stored share 0.25 (restored or"
                " edited state?)",
                0.0,
                "what its traffic file shows",
            ),
            id="traffic-lower-than-state",
        ),
        pytest.param(
            None,
            None,
            [record(**FALLEN)],
            Traffic("missing"),
            Hold("no stored status, but the journal records a rollout", 0.0, "fallen back", 0.0),
            id="row-deleted-fallen-back-traffic-file-gone",
        ),
        pytest.param(
            None,
            None,
            [],
            Traffic("share", 0.0),
            Hold(
                "no stored status, but its traffic file exists", 0.0, "what its traffic file shows"
            ),
            id="store-deleted-traffic-at-0",
        ),
        pytest.param(
            None,
            None,
            [],
            Traffic("unreadable"),
            Hold("no stored status, but its traffic file exists", None, ""),
            id="store-deleted-traffic-unreadable",
        ),
        pytest.param(
            *stored({"phase": "Invalid", "message": "bad policy"}),
            [record()],
            Traffic(),
            Hold(
                "no stored status, but the journal records a rollout", 0.25, "last committed step"
            ),
            id="only-an-invalid-policy-message-left",
        ),
    ],
)
def test_an_untrusted_state_holds_at_the_last_safe_share(
    text: str | None,
    digest: str | None,
    journal: list[dict[str, Any]],
    traffic: Traffic,
    expected: Hold,
) -> None:
    assert run_judge(text, digest, journal=journal, traffic=traffic) == expected


@pytest.mark.parametrize(
    ("traffic", "expected"),
    [
        pytest.param(Traffic(), None, id="no-traffic-file-kind"),
        pytest.param(Traffic("missing"), None, id="traffic-file-not-written-yet"),
    ],
)
def test_a_gate_with_no_record_anywhere_is_new(traffic: Traffic, expected: None) -> None:
    assert run_judge(None, None, traffic=traffic) is expected


def test_an_invalid_policys_message_is_no_rollout_and_kept() -> None:
    body = {"phase": "Invalid", "message": "triage.yaml:3: spec.steps: bad"}
    assert run_judge(*stored(body), traffic=Traffic("missing")) == body


def test_a_stored_status_that_is_not_an_object_is_held() -> None:
    expected = Hold("stored status: expected an object, got a list", None, "")
    assert run_judge(*stored([1, 2])) == expected


def test_a_pending_step_whose_traffic_already_moved_is_not_held() -> None:
    pending = {"step": 1, "share": 0.05, "fallenBack": False, "decidedAt": "2026-11-20T11:00:00Z"}
    body = status(pending=pending)
    journal = [{**journal_record(body), "steps": list(STEPS)}]
    assert run_judge(*stored(body), journal=journal, traffic=Traffic("share", 0.05)) == body


@pytest.mark.parametrize(
    ("journal", "traffic", "expected"),
    [
        pytest.param([], Traffic(), Hold("p", None, ""), id="nothing-known"),
        pytest.param(
            [record()],
            Traffic("share", 1.0),
            Hold("p", 0.25, "last committed step", 0.25),
            id="traffic-above-journal-goes-down",
        ),
        pytest.param(
            [{**record(), "pending": {"step": 0, "share": 0.0, "fallenBack": True}}],
            Traffic("share", 0.25),
            Hold("p", 0.0, "fallen back", 0.0),
            id="pending-fallback-counts",
        ),
        pytest.param(
            [record(**FALLEN)],
            Traffic("unreadable"),
            Hold("p", 0.0, "fallen back", 0.0),
            id="fallen-back-writes-0-over-an-unreadable-file",
        ),
        pytest.param(
            [record()],
            Traffic("missing"),
            Hold("p", 0.25, "last committed step"),
            id="never-writes-a-share-above-0-to-a-missing-file",
        ),
    ],
)
def test_hold_never_moves_traffic_up(
    journal: list[dict[str, Any]], traffic: Traffic, expected: Hold
) -> None:
    assert hold_for("p", journal=journal, traffic=traffic) == expected


@pytest.mark.parametrize(
    ("hold", "message"),
    [
        pytest.param(
            Hold("stored status fails its checksum", 0.1, "last committed step"),
            "state.db: gate ticket-triage: stored status fails its checksum; holding at share"
            " 0.1 (last committed step) until `gatectl reset`",
            id="share-known",
        ),
        pytest.param(
            Hold("stored status is not valid JSON", None, ""),
            "state.db: gate ticket-triage: stored status is not valid JSON; holding, traffic"
            " left where it is (no record of its share) until `gatectl reset`",
            id="share-unknown",
        ),
    ],
)
def test_hold_message_names_the_file_the_gate_and_the_way_out(hold: Hold, message: str) -> None:
    assert hold.message(file="state.db", gate="ticket-triage") == message


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        pytest.param({}, None, id="none"),
        pytest.param(
            {"approve": {"step": 2, "by": "a", "at": "t"}, "reset": {"token": "t"}, "paused": True},
            None,
            id="all",
        ),
        pytest.param(
            {"approve": {"step": "2"}},
            "approve.step: expected an integer, got a string",
            id="approve-step-string",
        ),
        pytest.param({"approve": {"step": 0}}, "approve.step: 0 is below 1", id="approve-step-0"),
        pytest.param({"reset": {"by": "a"}}, "reset.token: required field missing", id="no-token"),
        pytest.param(
            {"fallback": {"token": "t", "by": "ann", "reason": "harm the metrics miss"}},
            None,
            id="fallback",
        ),
        pytest.param(
            {"fallback": {"by": "ann"}},
            "fallback.token: required field missing",
            id="fallback-no-token",
        ),
        pytest.param({"reset": "now"}, "reset: expected an object, got a string", id="reset-str"),
        pytest.param({"paused": "yes"}, "paused: expected a boolean, got a string", id="paused"),
        pytest.param(None, "expected an object, got null", id="null"),
    ],
)
def test_requests_problem(body: Any, problem: str | None) -> None:
    assert requests_problem(body) == problem


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        pytest.param(record(), None, id="valid"),
        pytest.param({**record(), "share": "x"}, "share: expected a number, got a string", id="sh"),
        pytest.param({**record(), "steps": [2]}, "steps: expected a list of shares", id="steps"),
        pytest.param(
            {**record(), "pending": {"step": 1}}, "pending.share: required field missing", id="p"
        ),
    ],
)
def test_record_problem(body: Any, problem: str | None) -> None:
    assert record_problem(body) == problem


@pytest.mark.parametrize(
    ("body", "current", "previous", "expected"),
    [
        pytest.param(status(), STEPS, None, list(STEPS), id="current-steps"),
        pytest.param(
            status(step=2, share=0.25),
            (0.1, 0.25, 0.5, 1.0),
            STEPS,
            [0.1, 0.25, 0.5, 1.0],
            id="fits-the-edited-steps-too",
        ),
        pytest.param(
            status(step=2, share=0.25),
            (0.05, 0.1, 0.25, 1.0),
            STEPS,
            list(STEPS),
            id="decided-under-the-old-steps",
        ),
        pytest.param(status(step=3, share=0.25), STEPS, None, None, id="fits-none"),
    ],
)
def test_record_steps_are_the_ones_the_status_fits(
    body: dict[str, Any],
    current: tuple[float, ...],
    previous: tuple[float, ...] | None,
    expected: list[float] | None,
) -> None:
    assert record_steps(body, current, previous) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param('{"share": 0.25, "mode": "canary"}', Traffic("share", 0.25), id="share"),
        pytest.param('{"share": 0}', Traffic("share", 0.0), id="zero"),
        pytest.param('{"share": 2}', Traffic("unreadable"), id="above-1"),
        pytest.param('{"share": true}', Traffic("unreadable"), id="bool"),
        pytest.param('{"shar', Traffic("unreadable"), id="torn"),
        pytest.param("[0.1]", Traffic("unreadable"), id="list"),
    ],
)
def test_traffic_file_share(text: str, expected: Traffic) -> None:
    assert traffic_from_text(text) == expected


def test_checksum_is_over_the_canonical_text() -> None:
    assert canonical({"b": 1, "a": [1.5, "é"]}) == '{"a":[1.5,"\\u00e9"],"b":1}'
    assert checksum("{}") == "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
