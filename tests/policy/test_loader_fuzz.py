"""Whatever a policy file holds, loading it gives gates or problems, never a traceback."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatectl.errors import PolicyError
from gatectl.policy import GateSpec, load_policies

FIELDS = [*GateSpec.model_fields, "promotion_window_hours", "typo_field"]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["<= 0.04", "== true", "x > 1", "48h", "0", "baseline", "{{workflow}}"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
SEED = {
    "canary_traffic": 0.1,
    "promotion_window_hours": 48,
    "success_criteria": {"exception_rate": "<= 0.04"},
    "rollback_trigger": ["exception_rate > 0.06"],
}
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _load(text: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "f.yaml"
        path.write_text(text, encoding="utf-8")
        result = load_policies([path])
    for problem in result.problems:
        assert isinstance(problem, PolicyError)
        assert problem.file == str(path)
        assert str(problem).startswith(str(path))
    assert result.gates or result.problems


@FUZZ
@given(st.text(max_size=200))
def test_any_text_loads_without_traceback(text: str) -> None:
    _load(text)


@FUZZ
@given(st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=6), st.booleans())
def test_seed_with_random_fields_loads_without_traceback(
    changes: dict[str, Any], bare: bool
) -> None:
    body = {**SEED, **changes}
    if bare:
        document: dict[str, Any] = {"workflow_release_gate": body}
    else:
        document = {
            "apiVersion": "gatectl.io/v1alpha1",
            "kind": "ReleaseGate",
            "metadata": {"name": "x"},
            "spec": body,
        }
    _load(yaml.safe_dump(document))


@FUZZ
@given(VALUES)
def test_any_yaml_value_loads_without_traceback(value: Any) -> None:
    _load(yaml.safe_dump(value))
