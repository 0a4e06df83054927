"""The exposure (sample-ratio-mismatch) check: its verdicts and how the decision uses them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gatectl.core.decide import decide
from gatectl.core.exposure import check_exposure
from gatectl.core.observations import Exposure, GateState, Observation, ObservationSet
from gatectl.core.render import decision_to_dict
from gatectl.policy.models import ExposureSettings, GateSpec

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ON = ExposureSettings(enabled=True)


def count(value: float | None) -> Observation:
    if value is None:
        return Observation.missing("samples", "empty result: no series matched")
    return Observation("samples", value)


def check(
    canary: float | None,
    baseline: float | None,
    *,
    recent: float | None = 100.0,
    share: float = 0.1,
    elapsed: float = 3600.0,
    confidence: float | None = 0.95,
    settings: ExposureSettings = ON,
) -> Exposure:
    return check_exposure(
        settings,
        share=share,
        canary=count(canary),
        baseline=count(baseline),
        recent=count(recent),
        elapsed_seconds=elapsed,
        confidence=confidence,
    )


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        pytest.param(
            {"canary": 1000.0, "baseline": 9000.0},
            Exposure("ok", 0.1, 10_000.0),
            id="as-set",
        ),
        pytest.param(
            {"canary": 1615.0, "baseline": 3595.0},
            Exposure(
                "mismatch",
                1615.0 / 5210.0,
                5210.0,
                "exposure mismatch: set 10 %, observed 31 % (n = 5,210)",
                blocks=True,
            ),
            id="router-serves-31-percent",
        ),
        pytest.param(
            {"canary": 13.0, "baseline": 87.0},
            Exposure("ok", 0.13, 100.0),
            id="noise-is-not-a-mismatch",
        ),
        pytest.param(
            {"canary": 13.0, "baseline": 87.0, "confidence": None},
            Exposure(
                "mismatch",
                0.13,
                100.0,
                "exposure mismatch: set 10 %, observed 13 % (n = 100)",
                blocks=True,
            ),
            id="point-values-with-confidence-off",
        ),
        pytest.param(
            {"canary": 50_000.0, "baseline": 50.0, "share": 0.01},
            Exposure(
                "mismatch",
                50_000.0 / 50_050.0,
                50_050.0,
                "exposure mismatch: set 1 %, observed 99.9 % (n = 50,050)",
                blocks=True,
            ),
            id="all-traffic-when-told-1-percent",
        ),
        pytest.param(
            {"canary": 300.0, "baseline": 9000.0, "recent": 0.0},
            Exposure(
                "mismatch",
                0.0,
                0.0,
                "exposure mismatch: set 10 %, no canary requests for 10m",
                blocks=True,
            ),
            id="no-canary-requests-for-the-grace",
        ),
        pytest.param(
            {"canary": 0.0, "baseline": 90.0, "recent": 0.0, "elapsed": 300.0},
            Exposure("ok", 0.0, 90.0),
            id="no-canary-requests-within-the-grace",
        ),
        pytest.param(
            {"canary": 1000.0, "baseline": None},
            Exposure("not_checked", message="exposure not checked: no baseline track"),
            id="no-baseline-is-a-note",
        ),
        pytest.param(
            {
                "canary": 1000.0,
                "baseline": None,
                "settings": ExposureSettings(enabled=False, required=True),
            },
            Exposure("ok"),
            id="disabled",
        ),
        pytest.param(
            {
                "canary": 1000.0,
                "baseline": None,
                "settings": ExposureSettings(enabled=True, required=True),
            },
            Exposure("not_checked", message="exposure not checked: no baseline track", blocks=True),
            id="no-baseline-when-required-blocks",
        ),
        pytest.param(
            {"canary": 1000.0, "baseline": 0.0, "share": 1.0},
            Exposure("ok"),
            id="complete-is-not-checked",
        ),
        pytest.param(
            {"canary": 0.0, "baseline": 0.0, "elapsed": 60.0},
            Exposure("no_data", message="exposure not checked: no requests yet"),
            id="no-requests-yet",
        ),
    ],
)
def test_verdicts(kwargs: dict[str, Any], expected: Exposure) -> None:
    assert check(**kwargs) == expected


def spec(**exposure: Any) -> GateSpec:
    return GateSpec.model_validate(
        {
            "canary_traffic": 0.1,
            "promotion_window": "1h",
            "min_samples": 10,
            "success_criteria": {"exception_rate": "<= 0.04"},
            "exposure": {"enabled": True, **exposure},
        }
    )


def observed(canary: float, baseline: float | None) -> ObservationSet:
    rate = Observation("exception_rate", 0.0, query="q", numerator=0.0, denominator=canary)
    return ObservationSet(
        canary={"exception_rate": rate},
        samples=count(canary),
        baseline_samples=count(baseline),
        recent_samples=count(canary / 6),
    )


STATE = GateState(step_started_at=NOW - timedelta(hours=2))


@pytest.mark.parametrize(
    ("settings", "action"),
    [
        pytest.param({}, "hold", id="hold-by-default"),
        pytest.param({"on_mismatch": "fallback"}, "fallback", id="fallback-when-asked"),
    ],
)
def test_a_router_serving_the_wrong_share_never_promotes(
    settings: dict[str, Any], action: str
) -> None:
    decision = decide(spec(**settings), observed(1615.0, 3595.0), STATE, now=NOW)
    assert decision.action.value == action
    assert decision.reasons[0] == "exposure mismatch: set 10 %, observed 31 % (n = 5,210)"
    assert decision.exposure is not None and decision.exposure.status == "mismatch"


def test_the_right_share_promotes_and_no_baseline_is_a_note() -> None:
    assert decide(spec(), observed(5000.0, 45_000.0), STATE, now=NOW).action.value == "promote"
    decision = decide(spec(), observed(5000.0, None), STATE, now=NOW)
    assert decision.action.value == "promote"
    assert decision.notes == ("exposure not checked: no baseline track",)


def test_the_json_evidence_carries_the_observed_share() -> None:
    decision = decide(spec(), observed(1615.0, 3595.0), STATE, now=NOW)
    body = decision_to_dict(decision, gate="g", workflow="w")
    assert body["exposure"] == {
        "status": "mismatch",
        "observed_share": round(1615.0 / 5210.0, 10),
        "requests": 5210.0,
        "message": "exposure mismatch: set 10 %, observed 31 % (n = 5,210)",
    }


def test_the_observed_share_is_exported_as_a_gauge() -> None:
    from gatectl.adapters.exposition import Recorder
    from gatectl.policy.models import Gate

    recorder = Recorder()
    labels = {"namespace": "default", "gate": "g", "workflow": "g"}
    name = "gatectl_gate_exposure_observed_share"
    gate = Gate(name="g", spec=spec())
    recorder.record_decision(
        gate, decide(spec(), observed(1615.0, 3595.0), STATE, now=NOW), phase="Holding"
    )
    assert recorder.registry.get_sample_value(name, labels) == pytest.approx(1615.0 / 5210.0)
    recorder.record_decision(
        gate, decide(spec(), observed(5000.0, None), STATE, now=NOW), phase="Holding"
    )
    assert recorder.registry.get_sample_value(name, labels) is None
