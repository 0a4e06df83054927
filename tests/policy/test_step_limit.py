"""At most 20 steps, in file mode as on Kubernetes (where the CRD says the same at admission)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gatectl.cli import main
from gatectl.core.crd import crd_yaml
from gatectl.policy.models import MAX_STEPS


def policy(count: int) -> str:
    steps = [round((i + 1) / 100, 2) for i in range(count - 1)] + [1.0]
    return (
        "workflow_release_gate:\n"
        f"  canary_traffic: {steps[0]}\n"
        f"  steps: {steps}\n"
        "  promotion_window_hours: 1\n"
        '  success_criteria: {exception_rate: "<= 0.04"}\n'
    )


@pytest.mark.parametrize(("count", "code"), [(MAX_STEPS, 0), (MAX_STEPS + 1, 2)])
def test_more_than_twenty_steps_is_a_policy_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], count: int, code: int
) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(policy(count), encoding="utf-8")

    assert main(["validate", str(path)]) == code
    if code:
        assert (
            f"{path}:3: workflow_release_gate.steps: at most 20 steps, got 21"
            in capsys.readouterr().err
        )


def test_the_crd_bounds_steps_as_the_model_does() -> None:
    crd = yaml.safe_load(crd_yaml())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["steps"]["maxItems"] == MAX_STEPS == 20
