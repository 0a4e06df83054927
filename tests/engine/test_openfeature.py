"""``traffic.kind: openfeature`` in file mode: the flag file is rewritten atomically, once.

The evaluators reading these files (the OpenFeature flagd provider, flagd's own
engine) are exercised in ``tests/e2e/test_flagd_*.py``; here: what is written,
what is left alone, and what is refused.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from gatectl.engine.actuators import ActuatorError, Actuators

from .fakes import gate

FLAGS: dict[str, Any] = {
    "$schema": "https://flagd.dev/schema/v0/flags.json",
    "flags": {
        "triage-path": {
            "state": "ENABLED",
            "variants": {"ai": "ai", "deterministic": "deterministic"},
            "defaultVariant": "deterministic",
            "targeting": {"fractional": [["ai", 0], ["deterministic", 100]]},
        },
        "new-ui": {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "off",
            "targeting": {"fractional": [["on", 30], ["off", 70]]},
        },
    },
}


def _traffic(path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "openfeature",
        "path": str(path),
        "flag": "triage-path",
        "ai_variant": "ai",
        "deterministic_variant": "deterministic",
        **extra,
    }


@pytest.fixture
def flag_file(tmp_path: Path) -> Path:
    path = tmp_path / "flags" / "flags.flagd.json"
    path.parent.mkdir()
    path.write_text(json.dumps(FLAGS, indent=4) + "\n")
    path.chmod(0o644)
    return path


def test_sets_the_weights_of_one_flag_and_keeps_the_file_readable(flag_file: Path) -> None:
    Actuators().apply(gate("triage", traffic=_traffic(flag_file)), share=0.25)
    written = json.loads(flag_file.read_text())
    assert written["flags"]["triage-path"]["targeting"] == {
        "fractional": [["ai", 25], ["deterministic", 75]]
    }
    assert written["flags"]["new-ui"] == FLAGS["flags"]["new-ui"]
    assert written["$schema"] == FLAGS["$schema"]
    assert stat.S_IMODE(flag_file.stat().st_mode) == 0o644, "a reader as another user still can"
    assert [p.name for p in flag_file.parent.iterdir()] == ["flags.flagd.json"], "no temp left"


def test_same_share_writes_nothing(flag_file: Path) -> None:
    actuators = Actuators()
    g = gate("triage", traffic=_traffic(flag_file))
    actuators.apply(g, share=0.25)
    before = flag_file.stat()
    actuators.apply(g, share=0.25)
    after = flag_file.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_write_replaces_the_file_never_edits_it_in_place(flag_file: Path) -> None:
    """A reader holding the old file keeps reading a whole old file (rename, not rewrite)."""
    with flag_file.open() as old:
        Actuators().apply(gate("triage", traffic=_traffic(flag_file)), share=0.5)
        assert json.load(old) == FLAGS
    assert json.loads(flag_file.read_text())["flags"]["triage-path"]["targeting"] == {
        "fractional": [["ai", 50], ["deterministic", 50]]
    }


def test_fallback_gives_the_deterministic_variant_all_weight(flag_file: Path) -> None:
    g = gate("triage", traffic=_traffic(flag_file, total=1000))
    Actuators().apply(g, share=0.1)
    Actuators().apply(g, share=0.0)
    targeting = json.loads(flag_file.read_text())["flags"]["triage-path"]["targeting"]
    assert targeting == {"fractional": [["ai", 0], ["deterministic", 1000]]}


@pytest.mark.parametrize(
    ("content", "traffic", "message"),
    [
        pytest.param(None, {}, "{path}: no such flag file", id="missing-file"),
        pytest.param("{ not json", {}, "{path}: not a JSON flag file (line 1)", id="not-json"),
        pytest.param(
            json.dumps(FLAGS),
            {"flag": "checkout"},
            "{path}: no flag 'checkout' (flags: new-ui, triage-path)",
            id="unknown-flag",
        ),
        pytest.param(
            json.dumps(FLAGS),
            {"ai_variant": "llm"},
            "{path}: flag 'triage-path' has no variant 'llm'",
            id="unknown-variant",
        ),
        pytest.param(
            json.dumps(FLAGS),
            {"flag": "new-ui", "ai_variant": "on", "deterministic_variant": "maybe"},
            "{path}: flag 'new-ui' has no variant 'maybe'",
            id="unknown-deterministic-variant",
        ),
    ],
)
def test_refusals_say_which_file_and_why(
    tmp_path: Path, content: str | None, traffic: dict[str, Any], message: str
) -> None:
    path = tmp_path / "flags.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ActuatorError) as caught:
        Actuators().apply(gate("triage", traffic=_traffic(path, **traffic)), share=0.1)
    assert str(caught.value) == message.format(path=path)
    if content is not None:
        assert path.read_text() == content, "a refused file is left exactly as it was"


def test_a_releasegate_never_writes_the_controllers_files(flag_file: Path) -> None:
    actuators = Actuators(resources=lambda kind: None, kubernetes=True)  # type: ignore[arg-type,return-value]
    with pytest.raises(ActuatorError) as caught:
        actuators.apply(gate("triage", traffic=_traffic(flag_file)), share=0.1)
    assert str(caught.value) == "openfeature source file is for file mode only"
    assert json.loads(flag_file.read_text()) == FLAGS
