"""The flag file gatectl writes, read by real flagd evaluators: the share it set is the share served.

Two evaluators, both implementing flagd's ``fractional`` (murmur3 over the
targeting key, weighted buckets):

- ``python-provider``: the official OpenFeature flagd provider
  (``openfeature-provider-flagd``) in in-process mode, reading the file itself;
- ``flagd-core``: flagd's own Go evaluation engine
  (``github.com/open-feature/flagd/core/pkg/evaluator``), built by
  ``scripts/flagd-binary.sh`` from the Go module proxy. (The flagd daemon cannot
  be built from the proxy this project reaches; see that script.)

10,000 targeting keys per share; the AI variant's share must be within ±1.5
percentage points of the weight gatectl set, a fallback (share 0) must send
every key to the deterministic variant, and a promotion must never move a key
that was on the AI path back.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.required import missing, require_module

from gatectl.engine.actuators import Actuators
from gatectl.policy import Gate, GateSpec

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "scripts" / "flagd-binary.sh"
KEYS = [f"user-{n:05d}" for n in range(10_000)]
TOLERANCE = 0.015
FLAGS: dict[str, Any] = {
    "$schema": "https://flagd.dev/schema/v0/flags.json",
    "flags": {
        "triage-path": {
            "state": "ENABLED",
            "variants": {"ai": "ai-triage", "deterministic": "rules-triage"},
            "defaultVariant": "deterministic",
            "targeting": {"fractional": [["ai", 0], ["deterministic", 100]]},
        },
        "unrelated": {
            "state": "ENABLED",
            "variants": {"on": "on", "off": "off"},
            "defaultVariant": "off",
        },
    },
}

Evaluate = Callable[[Path], dict[str, str]]
"""Flag file -> {targeting key: variant} for every key of ``KEYS``."""


def _python_provider(path: Path) -> dict[str, str]:
    require_module("openfeature.contrib.provider.flagd", install="pip install -e '.[dev]'")
    from openfeature import api
    from openfeature.contrib.provider.flagd import FlagdProvider
    from openfeature.contrib.provider.flagd.config import ResolverType
    from openfeature.evaluation_context import EvaluationContext

    provider = FlagdProvider(resolver_type=ResolverType.FILE, offline_flag_source_path=str(path))
    domain = f"gatectl-test-{path.stat().st_ino}"
    api.set_provider_and_wait(provider, domain)
    try:
        client = api.get_client(domain)
        variants = {}
        for key in KEYS:
            details = client.get_string_details(
                "triage-path", "unset", EvaluationContext(targeting_key=key)
            )
            assert details.error_code is None, details.error_message
            variants[key] = str(details.variant)
        return variants
    finally:
        provider.shutdown()


@pytest.fixture(scope="module")
def flagd_eval() -> Path:
    """The flagd-core evaluator, built (once, cached) by scripts/flagd-binary.sh."""
    done = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=1800, check=False
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        missing(f"{BUILD_SCRIPT} failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return Path(lines[0])


def _flagd_core(binary: Path) -> Evaluate:
    def evaluate(path: Path) -> dict[str, str]:
        done = subprocess.run(
            [str(binary), str(path), "triage-path"],
            input="\n".join(KEYS) + "\n",
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        answers = [json.loads(line) for line in done.stdout.splitlines()]
        assert [a["error"] for a in answers if a.get("error")] == []
        return {a["key"]: a["variant"] for a in answers}

    return evaluate


@pytest.fixture(params=["python-provider", "flagd-core"])
def evaluate(request: pytest.FixtureRequest) -> Iterator[Evaluate]:
    if request.param == "python-provider":
        yield _python_provider
    else:
        yield _flagd_core(request.getfixturevalue("flagd_eval"))


def _gate(path: Path, *, total: int = 100) -> Gate:
    spec = GateSpec.model_validate(
        {
            "canary_traffic": 0.05,
            "steps": [0.05, 0.1, 0.25, 0.5, 1.0],
            "promotion_window": "1h",
            "success_criteria": {"exception_rate": "<= 0.04"},
            "traffic": {
                "kind": "openfeature",
                "path": str(path),
                "flag": "triage-path",
                "ai_variant": "ai",
                "deterministic_variant": "deterministic",
                "total": total,
            },
        }
    )
    return Gate(name="triage", namespace="default", spec=spec, source=str(path))


@pytest.fixture
def flag_file(tmp_path: Path) -> Path:
    path = tmp_path / "flags.flagd.json"
    path.write_text(json.dumps(FLAGS, indent=2))
    return path


def _ai_share(variants: dict[str, str]) -> float:
    return sum(v == "ai" for v in variants.values()) / len(variants)


def test_every_step_serves_the_share_gatectl_set(flag_file: Path, evaluate: Evaluate) -> None:
    gate = _gate(flag_file)
    actuators = Actuators()
    on_ai: set[str] = set()
    for share in (0.05, 0.1, 0.25, 0.5):
        actuators.apply(gate, share=share)
        variants = evaluate(flag_file)
        assert set(variants.values()) <= {"ai", "deterministic"}
        observed = _ai_share(variants)
        assert abs(observed - share) <= TOLERANCE, f"set {share:g}, served {observed:.4f}"
        now_on_ai = {k for k, v in variants.items() if v == "ai"}
        assert on_ai <= now_on_ai, "a promotion moved users off the AI path"
        on_ai = now_on_ai
    actuators.apply(gate, share=1.0)
    assert set(evaluate(flag_file).values()) == {"ai"}


def test_fallback_sends_every_key_to_the_deterministic_variant(
    flag_file: Path, evaluate: Evaluate
) -> None:
    gate = _gate(flag_file, total=1000)
    actuators = Actuators()
    actuators.apply(gate, share=0.25)
    assert abs(_ai_share(evaluate(flag_file)) - 0.25) <= TOLERANCE
    actuators.apply(gate, share=0.0)
    assert set(evaluate(flag_file).values()) == {"deterministic"}
    assert json.loads(flag_file.read_text())["flags"]["unrelated"] == FLAGS["flags"]["unrelated"]


def test_the_evaluators_read_the_untouched_file_as_all_deterministic(
    flag_file: Path, evaluate: Evaluate
) -> None:
    """The starting point of the other tests: weight 0 already means no AI traffic."""
    assert set(evaluate(flag_file).values()) == {"deterministic"}
