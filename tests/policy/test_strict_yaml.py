"""No implicit conversions: YAML 1.1 words, quoted numbers and tags are errors, never values.

``canary_traffic: yes`` once validated as 1.0 and moved all traffic to the AI
path at once; ``!!bool maybe`` and ``!!timestamp x`` exited 1 ("a bug"). Plain
scalars now resolve by the YAML 1.2 core schema, numbers are pydantic-strict,
and only the core tags are accepted, each with a value its tag allows.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gatectl.policy import load_policies

P = pytest.param
_W = "workflow_release_gate"
_TAGS = "(a policy holds only strings, numbers, true/false, null, lists and mappings)"

BARE = """\
workflow_release_gate:
  canary_traffic: 0.1
  promotion_window: 1h
  success_criteria:
    exception_rate: "<= 0.04"
"""


def _share(value: str) -> str:
    return BARE.replace("0.1\n", value + "\n")


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    result = load_policies([path])
    return [str(p).removeprefix(f"{path}:") for p in result.problems]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # YAML 1.1 booleans are words under YAML 1.2, and a word is not a number
        P(_share("yes"), f"2: {_W}.canary_traffic: must be a number, got 'yes'", id="share-yes"),
        P(_share("on"), f"2: {_W}.canary_traffic: must be a number, got 'on'", id="share-on"),
        P(_share("Y"), f"2: {_W}.canary_traffic: must be a number, got 'Y'", id="share-y"),
        P(_share("true"), f"2: {_W}.canary_traffic: must be a number, got true", id="share-true"),
        P(
            _share("!!bool true"),
            f"2: {_W}.canary_traffic: must be a number, got true",
            id="share-tagged-boolean",
        ),
        P(
            _share('"0.1"'),
            f"2: {_W}.canary_traffic: must be a number, got '0.1'",
            id="share-quoted-number",
        ),
        P(
            _share("!!str 0.1"),
            f"2: {_W}.canary_traffic: must be a number, got '0.1'",
            id="share-string-tag",
        ),
        P(
            BARE + "  min_samples: off\n",
            f"6: {_W}.min_samples: must be a whole number, got 'off'",
            id="min-samples-off",
        ),
        P(
            BARE + "  min_samples: 100.0\n",
            f"6: {_W}.min_samples: must be a whole number, got 100.0",
            id="min-samples-float",
        ),
        P(
            BARE + "  min_samples: '100'\n",
            f"6: {_W}.min_samples: must be a whole number, got '100'",
            id="min-samples-quoted",
        ),
        P(
            BARE + "  min_samples: 1_000\n",
            f"6: {_W}.min_samples: must be a whole number, got '1_000'",
            id="min-samples-underscores",
        ),
        P(
            BARE + "  min_samples: 0x10\n",
            f"6: {_W}.min_samples: must be a whole number, got '0x10'",
            id="min-samples-hex",
        ),
        P(
            BARE + "  min_samples: 1:30\n",
            f"6: {_W}.min_samples: must be a whole number, got '1:30'",
            id="min-samples-sexagesimal",
        ),
        P(
            BARE + "  max_inconclusive: no\n",
            f"6: {_W}.max_inconclusive: must be a whole number, got 'no'",
            id="max-inconclusive-no",
        ),
        P(
            BARE + "  steps: [0.1, true]\n",
            f"6: {_W}.steps.1: must be a number, got true",
            id="steps-true",
        ),
        P(
            BARE + "  steps: [0.1, yes]\n",
            f"6: {_W}.steps.1: must be a number, got 'yes'",
            id="steps-yes",
        ),
        P(
            BARE.replace("promotion_window: 1h", "promotion_window_hours: on"),
            f"3: {_W}.promotion_window_hours: expected a duration like '90s', '30m', '48h' or"
            " '2d', got 'on'",
            id="hours-on",
        ),
        P(
            BARE.replace("promotion_window: 1h", "promotion_window_hours: 1:30"),
            f"3: {_W}.promotion_window_hours: expected a duration like '90s', '30m', '48h' or"
            " '2d', got '1:30'",
            id="hours-sexagesimal",
        ),
        P(
            BARE + "  confidence: yes\n",
            f"6: {_W}.confidence: must be a number or 'off', got 'yes'",
            id="confidence-yes",
        ),
        P(
            BARE.replace('"<= 0.04"', '{condition: "<= 0.04", confidence: on}'),
            f"5: {_W}.success_criteria.exception_rate.confidence: must be a number or 'off', got 'on'",
            id="criterion-confidence-on",
        ),
        P(
            BARE + "  approval: {required_above: off}\n",
            f"6: {_W}.approval.required_above: must be a number, got 'off'",
            id="approval-off",
        ),
        P(
            BARE + "  traffic: {kind: deployment, name: a, stable_deployment: b,"
            " total_replicas: '3'}\n",
            f"6: {_W}.traffic.total_replicas: must be a whole number, got '3'",
            id="replicas-quoted",
        ),
        P(
            _share(".nan"),
            f"2: {_W}.canary_traffic: must be > 0 and <= 1, got nan",
            id="share-nan",
        ),
        P(
            _share(".inf"),
            f"2: {_W}.canary_traffic: must be > 0 and <= 1, got inf",
            id="share-infinite",
        ),
        # --- tags
        P(
            _share("!!bool maybe"),
            f"2: {_W}.canary_traffic: invalid YAML: cannot read 'maybe' as !!bool"
            " (expected true or false)",
            id="tag-bool-maybe",
        ),
        P(
            _share("!<tag:yaml.org,2002:bool> yes"),
            f"2: {_W}.canary_traffic: invalid YAML: cannot read 'yes' as !!bool"
            " (expected true or false)",
            id="tag-bool-yes-verbatim",
        ),
        P(
            _share("!!float abc"),
            f"2: {_W}.canary_traffic: invalid YAML: cannot read 'abc' as !!float"
            " (expected a number)",
            id="tag-float-word",
        ),
        P(
            _share("!!null x"),
            f"2: {_W}.canary_traffic: invalid YAML: cannot read 'x' as !!null (expected null or ~)",
            id="tag-null-value",
        ),
        P(
            _share("!!timestamp x"),
            f"2: {_W}.canary_traffic: unsupported YAML tag !!timestamp {_TAGS}",
            id="tag-timestamp-garbage",
        ),
        P(
            _share("!!timestamp 2026-01-01"),
            f"2: {_W}.canary_traffic: unsupported YAML tag !!timestamp {_TAGS}",
            id="tag-timestamp-valid-date",
        ),
        P(
            _share("!!python/object:os.system x"),
            f"2: {_W}.canary_traffic: unsupported YAML tag !!python/object:os.system {_TAGS}",
            id="tag-python-object",
        ),
        P(
            _share("!!python/object/apply:os.system [echo]"),
            f"2: {_W}.canary_traffic: unsupported YAML tag !!python/object/apply:os.system {_TAGS}",
            id="tag-python-apply-on-a-list",
        ),
        P(
            "!!python/object:x\n" + BARE,
            f"1: unsupported YAML tag !!python/object:x {_TAGS}",
            id="tag-on-the-document",
        ),
        P(
            BARE + "  !!python/name:os.system : 1\n",
            f"6: {_W}: unsupported YAML tag !!python/name:os.system {_TAGS}",
            id="tag-on-a-key",
        ),
        P(
            _share("!foo 0.1"),
            f"2: {_W}.canary_traffic: unsupported YAML tag !foo {_TAGS}",
            id="tag-local",
        ),
        P(
            BARE + "  metrics: !!set {a, b}\n",
            f"6: {_W}.metrics: unsupported YAML tag !!set {_TAGS}",
            id="tag-set",
        ),
        P(
            BARE + "  owner: !!binary aGVsbG8=\n",
            f"6: {_W}.owner: unsupported YAML tag !!binary {_TAGS}",
            id="tag-binary",
        ),
        P(
            BARE + "  owner: !!omap [{a: 1}]\n",
            f"6: {_W}.owner: unsupported YAML tag !!omap {_TAGS}",
            id="tag-omap",
        ),
        P(
            _share("!<" + "x" * 50 + "> 1"),
            f"2: {_W}.canary_traffic: unsupported YAML tag '{'x' * 37}...' {_TAGS}",
            id="long-tag-is-cut-short",
        ),
        # --- merge keys
        P(
            "workflow_release_gate:\n  <<: 1\n",
            f"2: {_W}: a merge key (<<) takes a mapping or a list of mappings",
            id="merge-of-a-scalar",
        ),
        P("a: &a {b: 1, <<: *a}\n", "1: a: recursive alias", id="merge-of-itself"),
    ],
)
def test_no_implicit_conversion_or_foreign_tag_is_accepted(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert _problems(tmp_path, text) == [expected]


@pytest.mark.parametrize(
    ("line", "field", "value"),
    [
        P("  owner: no\n", "owner", "no", id="norway-is-a-string"),
        P("  workflow: on\n", "workflow", "on", id="on-is-a-string"),
        P("  owner: 2026-01-01\n", "owner", "2026-01-01", id="date-is-a-string"),
        P("  escalation: 1:30\n", "escalation", "1:30", id="sexagesimal-is-a-string"),
        P("  paused: yes\n", "paused", True, id="yes-still-means-true-for-a-boolean"),
        P("  paused: off\n", "paused", False, id="off-still-means-false-for-a-boolean"),
        P("  paused: true\n", "paused", True, id="true"),
        P("  min_samples: 017\n", "min_samples", 17, id="leading-zero-is-decimal"),
        P("  min_samples: !!int 5\n", "min_samples", 5, id="int-tag"),
        P("  confidence: !!float 0.9\n", "confidence", 0.9, id="float-tag"),
        P("  owner: !!str 12\n", "owner", "12", id="str-tag"),
        P("  owner: ~\n", "owner", None, id="tilde-is-null"),
    ],
)
def test_strings_stay_strings_and_booleans_stay_booleans(
    tmp_path: Path, line: str, field: str, value: object
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(BARE + line, encoding="utf-8")
    result = load_policies([path])
    assert [str(p) for p in result.problems] == []
    (gate,) = result.gates
    assert getattr(gate.spec, field) == value


@pytest.mark.parametrize(
    ("value", "share"),
    [
        P("1", 1.0, id="whole-number"),
        P("0.25", 0.25, id="decimal"),
        P("2.5e-1", 0.25, id="exponent"),
        P("!!float 1", 1.0, id="float-tag-on-a-whole-number"),
    ],
)
def test_numbers_written_as_numbers_are_accepted(tmp_path: Path, value: str, share: float) -> None:
    path = tmp_path / "p.yaml"
    text = _share(value) + (f"  steps: [{value}, 1.0]\n" if share < 1 else "")
    path.write_text(text, encoding="utf-8")
    result = load_policies([path])
    assert [str(p) for p in result.problems] == []
    assert result.gates[0].spec.canary_traffic == share


def test_merge_keys_fill_only_missing_keys_and_earlier_sources_win(tmp_path: Path) -> None:
    text = """\
apiVersion: gatectl.io/v1alpha1
kind: ReleaseGate
metadata:
  name: m
  annotations:
    base: &base {canary_traffic: 0.5, promotion_window: 3h, min_samples: 7}
    more: &more {canary_traffic: 0.9, max_inconclusive: 4, <<: {owner: deep}}
spec:
  <<: [*base, *more]
  canary_traffic: 0.2
  success_criteria: {exception_rate: "< 1"}
"""
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    result = load_policies([path])
    (gate,) = result.gates
    spec = gate.spec
    assert (
        spec.canary_traffic,
        spec.promotion_window,
        spec.min_samples,
        spec.max_inconclusive,
        spec.owner,
    ) == (0.2, 3 * 3600.0, 7, 4, "deep")
