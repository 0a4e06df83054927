"""Loading policies: both forms, files and directories, and the exact message of every mistake."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from gatectl.errors import PolicyError
from gatectl.policy import LoadResult, load_gates, load_policies
from gatectl.policy import loader as loader_module

P = pytest.param
REPO = Path(__file__).resolve().parents[2]

SEED = """\
workflow_release_gate:
  canary_traffic: 0.10
  promotion_window_hours: 48
  success_criteria:
    exception_rate: "<= 0.04"
    human_override_rate: "<= 0.15"
    critical_regressions: "== 0"
  rollback_trigger:
    - exception_rate > 0.06
    - reviewer_queue_sla_breach == true
    - critical_regressions > 0
  fallback_mode: deterministic_path
"""

BARE = """\
workflow_release_gate:
  canary_traffic: 0.1
  promotion_window: 1h
  success_criteria:
    exception_rate: "<= 0.04"
"""

RESOURCE = """\
apiVersion: gatectl.io/v1alpha1
kind: ReleaseGate
metadata: {name: a}
spec:
  canary_traffic: 0.1
  promotion_window: 1h
  success_criteria: {exception_rate: "< 1"}
"""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages name files as given: run in a scratch directory with relative names."""
    monkeypatch.chdir(tmp_path)


def write(name: str, text: str) -> str:
    Path(name).parent.mkdir(parents=True, exist_ok=True)
    Path(name).write_text(textwrap.dedent(text), encoding="utf-8")
    return name


def messages(result: LoadResult) -> list[str]:
    return [str(problem) for problem in result.problems]


# --- good policies ---------------------------------------------------------------------------


def test_seed_policy_loads_verbatim_in_bare_form() -> None:
    result = load_policies([write("ticket-triage.yaml", SEED)])
    assert messages(result) == []
    (gate,) = result.gates
    spec = gate.spec
    assert (gate.name, gate.namespace, gate.workflow, gate.key, gate.source) == (
        "ticket-triage",
        "default",
        "ticket-triage",
        "default/ticket-triage",
        "ticket-triage.yaml:1",
    )
    assert spec.canary_traffic == 0.10
    assert spec.shares == (0.10, 1.0)
    assert spec.promotion_window == 48 * 3600
    assert {m: c.condition.text for m, c in spec.success_criteria.items()} == {
        "exception_rate": "<= 0.04",
        "human_override_rate": "<= 0.15",
        "critical_regressions": "== 0",
    }
    assert [t.expression.text for t in spec.rollback_trigger] == [
        "exception_rate > 0.06",
        "reviewer_queue_sla_breach == true",
        "critical_regressions > 0",
    ]
    assert spec.fallback_mode == "deterministic_path"
    assert (spec.min_samples, spec.on_no_data, spec.max_inconclusive) == (100, "hold", 10)
    assert spec.evaluation_interval == 60.0
    assert gate.generation is None


def test_resource_form_takes_name_and_namespace_from_metadata() -> None:
    text = """\
    # a comment first
    apiVersion: gatectl.io/v1alpha1
    kind: ReleaseGate
    metadata: {name: triage, namespace: support, labels: {team: a}}
    spec:
      workflow: ticket-triage
      canary_traffic: 0.05
      steps: [0.05, 0.10, 0.25, 0.50, 1.0]
      promotion_window: 6h
      success_criteria: {exception_rate: "<= 0.04"}
    status: {phase: Holding}
    """
    (gate,) = load_gates([write("gates/k8s.yaml", text)])
    assert (gate.name, gate.namespace, gate.workflow, gate.key, gate.source) == (
        "triage",
        "support",
        "ticket-triage",
        "support/triage",
        "gates/k8s.yaml:2",
    )
    assert gate.spec.shares == (0.05, 0.10, 0.25, 0.50, 1.0)
    assert gate.spec.promotion_window == 6 * 3600


def test_resource_form_workflow_defaults_to_metadata_name() -> None:
    (gate,) = load_gates([write("x.yaml", RESOURCE)])
    assert (gate.key, gate.workflow) == ("default/a", "a")


def test_bare_form_name_field_overrides_file_stem() -> None:
    (gate,) = load_gates([write("file-stem.yaml", BARE + "  name: my-gate\n")])
    assert (gate.name, gate.workflow) == ("my-gate", "my-gate")


@pytest.mark.parametrize(
    ("line", "seconds"),
    [
        P("promotion_window: 6h", 21600.0, id="hours-string"),
        P("promotion_window: 30m", 1800.0, id="minutes-string"),
        P("promotion_window: 1h30m", 5400.0, id="compound"),
        P("promotion_window: 2", 7200.0, id="bare-number-is-hours"),
        P('promotion_window: "48"', 172800.0, id="bare-string-is-hours"),
        P("promotion_window_hours: 48", 172800.0, id="hours-field"),
        P("promotion_window_hours: 0.5", 1800.0, id="fractional-hours"),
        P("promotion_window_hours: 2d", 172800.0, id="hours-field-with-unit"),
    ],
)
def test_promotion_window_forms(line: str, seconds: float) -> None:
    (gate,) = load_gates([write("w.yaml", BARE.replace("promotion_window: 1h", line))])
    assert gate.spec.promotion_window == seconds


def test_mapping_forms_of_criteria_and_triggers_carry_their_settings() -> None:
    text = BARE.replace(
        '    exception_rate: "<= 0.04"\n',
        """\
    exception_rate: {condition: "<= baseline * 1.2", confidence: 0.9, dry_run: true}
    human_override_rate: {condition: "< 0.2", on_no_data: fallback}
  rollback_trigger:
    - {expression: "critical_regressions > 0", dry_run: true, on_no_data: hold}
    - exception_rate > 0.5
""",
    )
    (gate,) = load_gates([write("m.yaml", text)])
    rate = gate.spec.success_criteria["exception_rate"]
    assert (rate.condition.text, rate.condition.relative, rate.confidence, rate.dry_run) == (
        "<= baseline * 1.2",
        True,
        0.9,
        True,
    )
    assert gate.spec.success_criteria["human_override_rate"].on_no_data == "fallback"
    first, second = gate.spec.rollback_trigger
    assert (first.expression.metric, first.dry_run, first.on_no_data) == (
        "critical_regressions",
        True,
        "hold",
    )
    assert (second.expression.text, second.dry_run, second.on_no_data) == (
        "exception_rate > 0.5",
        False,
        None,
    )


def test_several_documents_in_one_file_each_with_its_own_line() -> None:
    text = "---\n" + BARE + "  name: one\n---\n# nothing but a comment\n---\n" + RESOURCE
    result = load_policies([write("multi.yaml", text)])
    assert messages(result) == []
    assert [(g.key, g.source) for g in result.gates] == [
        ("default/one", "multi.yaml:2"),
        ("default/a", "multi.yaml:11"),
    ]


def test_directory_loads_yaml_and_yml_files_sorted_and_not_recursively() -> None:
    write("policies/b.yml", BARE)
    write("policies/a.yaml", BARE)
    write("policies/notes.txt", "not a policy")
    write("policies/nested/c.yaml", BARE)
    result = load_policies(["policies"])
    assert messages(result) == []
    assert [g.source for g in result.gates] == ["policies/a.yaml:1", "policies/b.yml:1"]


def test_paths_may_be_path_objects() -> None:
    write("p.yaml", BARE)
    assert [g.name for g in load_gates([Path("p.yaml")])] == ["p"]


def test_custom_metrics_make_their_names_usable() -> None:
    text = BARE + textwrap.indent(
        textwrap.dedent(
            """\
            rollback_trigger: ["misroutes > 0.1", "queue_breach == true"]
            metrics:
              misroutes:
                numerator: sum(increase(x{workflow="{{workflow}}",track="{{ track }}"}[{{window}}]))
                denominator: sum(increase(y{workflow="{{workflow}}"}[{{window}}]))
              queue_breach: {query: max(z) > bool 0}
            """
        ),
        "  ",
    )
    (gate,) = load_gates([write("c.yaml", text)])
    assert gate.spec.metrics["misroutes"].is_rate
    assert not gate.spec.metrics["queue_breach"].is_rate
    assert gate.spec.metric_names() == ["exception_rate", "misroutes", "queue_breach"]


def test_every_example_policy_in_the_repository_validates() -> None:
    result = load_policies([REPO / "policies"])
    assert messages(result) == []
    assert sorted(g.workflow for g in result.gates) == [
        "document-intake",
        "request-routing",
        "ticket-triage",
    ]


def test_example_seed_policy_is_the_seed_verbatim() -> None:
    assert (REPO / "policies" / "ticket-triage.yaml").read_text(encoding="utf-8") == SEED


# --- bad policies: every message whole, with file and line -------------------------------------

_W = "workflow_release_gate"
_BUILTINS = "critical_regressions, exception_rate, human_override_rate, reviewer_queue_sla_breach"


def _swap(old: str, new: str, extra: str = "") -> str:
    return BARE.replace(old, new) + extra


BAD: list[object] = [
    # --- values out of bounds or of the wrong type
    P(
        _swap("0.1\n", "1.5\n"),
        f"2: {_W}.canary_traffic: must be > 0 and <= 1, got 1.5",
        id="share-above-one",
    ),
    P(
        _swap("0.1\n", "0\n"),
        f"2: {_W}.canary_traffic: must be > 0 and <= 1, got 0",
        id="share-zero",
    ),
    P(
        _swap("0.1\n", "ten\n"),
        f"2: {_W}.canary_traffic: must be a number, got 'ten'",
        id="share-word",
    ),
    P(_swap("1h", "0s"), f"3: {_W}.promotion_window: must be longer than 0", id="window-zero"),
    P(
        _swap("1h", "soon"),
        f"3: {_W}.promotion_window: expected a duration like '90s', '30m', '48h' or '2d', got 'soon'",
        id="window-word",
    ),
    P(
        _swap("1h", "[1]"),
        f"3: {_W}.promotion_window: expected a duration like '48h' or a number of hours, got a list",
        id="window-list",
    ),
    P(
        _swap("promotion_window: 1h", "promotion_window_hours: -2"),
        f"3: {_W}.promotion_window_hours: duration must be a finite, non-negative time, got -2",
        id="hours-negative",
    ),
    P(
        _swap("promotion_window: 1h", "promotion_window_hours: true"),
        f"3: {_W}.promotion_window_hours: expected a duration like '30m' or '48h', got true",
        id="hours-boolean",
    ),
    P(
        BARE + "  promotion_window_hours: 48\n",
        f"6: {_W}.promotion_window_hours: give promotion_window or promotion_window_hours, not both",
        id="both-window-fields",
    ),
    P(
        _swap("  promotion_window: 1h\n", ""),
        f"1: {_W}.promotion_window: required field missing (promotion_window, or"
        " promotion_window_hours)",
        id="window-missing",
    ),
    P(
        BARE + "  min_samples: -1\n",
        f"6: {_W}.min_samples: must be >= 0, got -1",
        id="min-samples-negative",
    ),
    P(
        BARE + "  min_samples: 1.5\n",
        f"6: {_W}.min_samples: must be a whole number, got 1.5",
        id="min-samples-fraction",
    ),
    P(
        BARE + "  max_inconclusive: 0\n",
        f"6: {_W}.max_inconclusive: must be >= 1, got 0",
        id="max-inconclusive-zero",
    ),
    P(
        BARE + "  confidence: 0.5\n",
        f"6: {_W}.confidence: must be > 0.5 and < 1, got 0.5",
        id="confidence-half",
    ),
    P(
        BARE + "  evaluation_interval: 0\n",
        f"6: {_W}.evaluation_interval: must be longer than 0",
        id="interval-zero",
    ),
    P(BARE + "  name: ''\n", f"6: {_W}.name: must not be empty", id="name-empty"),
    P(
        BARE + "  paused: maybe\n",
        f"6: {_W}.paused: must be true or false, got 'maybe'",
        id="paused-word",
    ),
    P(
        BARE + "  fallback_mode: rollback\n",
        f"6: {_W}.fallback_mode: must be one of 'deterministic_path', 'previous_step', got 'rollback'",
        id="fallback-mode-unknown",
    ),
    P(
        BARE + "  on_no_data: explode\n",
        f"6: {_W}.on_no_data: must be one of 'hold', 'fallback', got 'explode'",
        id="on-no-data-unknown",
    ),
    # --- unknown and missing fields
    P(
        BARE + "  fallback_mod: deterministic_path\n",
        f"6: {_W}.fallback_mod: unknown field (did you mean 'fallback_mode'?)",
        id="typo-fallback-mode",
    ),
    P(
        BARE + "  promotion_windw: 2h\n",
        f"6: {_W}.promotion_windw: unknown field (did you mean 'promotion_window'?)",
        id="typo-promotion-window",
    ),
    P(
        BARE + "  promotion_window_hour: 2\n",
        f"6: {_W}.promotion_window_hour: unknown field (did you mean 'promotion_window_hours'?)",
        id="typo-promotion-window-hours",
    ),
    P(BARE + "  colour: blue\n", f"6: {_W}.colour: unknown field", id="unknown-field"),
    P(
        BARE.split("  success_criteria", maxsplit=1)[0],
        f"1: {_W}.success_criteria: required field missing",
        id="criteria-missing",
    ),
    P(
        _swap("0.1\n", "0.1\n  canary_traffic: 0.2\n"),
        f"3: {_W}.canary_traffic: duplicate key 'canary_traffic' (first on line 2)",
        id="duplicate-key",
    ),
    # --- criteria
    P(
        BARE.split("  success_criteria", maxsplit=1)[0] + "  success_criteria: {}\n",
        f"4: {_W}.success_criteria: needs at least one criterion",
        id="criteria-empty",
    ),
    P(
        BARE.split("  success_criteria", maxsplit=1)[0] + "  success_criteria: [a]\n",
        f"4: {_W}.success_criteria: must be a mapping, got a list",
        id="criteria-list",
    ),
    P(
        _swap('"<= 0.04"', ""),
        f"5: {_W}.success_criteria.exception_rate: expected a condition like '<= 0.04', got nothing",
        id="criterion-empty",
    ),
    P(
        _swap('"<= 0.04"', "0.04"),
        f"5: {_W}.success_criteria.exception_rate: expected a condition like '<= 0.04'"
        " (an operator first), got 0.04",
        id="criterion-number",
    ),
    P(
        _swap('"<= 0.04"', '"<= 0.04x"'),
        f"5: {_W}.success_criteria.exception_rate: cannot parse condition '<= 0.04x': expected OP"
        " VALUE, e.g. '<= 0.04', '== false' or '<= baseline * 1.2'",
        id="criterion-unparsable",
    ),
    P(
        _swap('"<= 0.04"', '{condition: "< 1", confidense: 0.9}'),
        f"5: {_W}.success_criteria.exception_rate.confidense: unknown field"
        " (did you mean 'confidence'?)",
        id="criterion-field-typo",
    ),
    P(
        _swap('"<= 0.04"', '{condition: "< 1", confidence: 1.2}'),
        f"5: {_W}.success_criteria.exception_rate.confidence: must be > 0.5 and < 1, got 1.2",
        id="criterion-confidence",
    ),
    P(
        _swap('"<= 0.04"', "{dry_run: true}"),
        f"5: {_W}.success_criteria.exception_rate.condition: required field missing",
        id="criterion-without-condition",
    ),
    P(
        _swap("exception_rate:", '"exception rate":'),
        f"4: {_W}.success_criteria: metric name 'exception rate' is not a valid identifier",
        id="metric-name-with-space",
    ),
    P(
        _swap("exception_rate:", "exeption_rate:"),
        f"5: {_W}.success_criteria.exeption_rate: unknown metric 'exeption_rate' (did you mean"
        f" 'exception_rate'?): define it under metrics, or use a built-in one ({_BUILTINS})",
        id="criterion-metric-typo",
    ),
    P(
        _swap('exception_rate: "<= 0.04"', 'reviewer_queue_sla_breach: "> 0"'),
        f"5: {_W}.success_criteria.reviewer_queue_sla_breach: reviewer_queue_sla_breach is true or"
        " false: compare it with == true or == false, not '> 0'",
        id="boolean-metric-numeric-operator",
    ),
    P(
        _swap('"<= 0.04"', '"== true"'),
        f"5: {_W}.success_criteria.exception_rate: exception_rate is a number: compare it with a"
        " number, not '== true'",
        id="numeric-metric-boolean-operand",
    ),
    # --- triggers
    P(
        BARE + "  rollback_trigger: exception_rate > 0.06\n",
        f"6: {_W}.rollback_trigger: must be a list, got 'exception_rate > 0.06'",
        id="trigger-not-a-list",
    ),
    P(
        BARE + "  rollback_trigger:\n    - exception_rate > 0.06\n    - exception_rate => 0.06\n",
        f"8: {_W}.rollback_trigger.1: cannot parse trigger 'exception_rate => 0.06': expected"
        " METRIC OP VALUE, e.g. 'exception_rate > 0.06'",
        id="trigger-unparsable",
    ),
    P(
        BARE + "  rollback_trigger:\n    -\n",
        f"7: {_W}.rollback_trigger.0: expected a trigger like 'exception_rate > 0.06', got nothing",
        id="trigger-empty-item",
    ),
    P(
        BARE + "  rollback_trigger:\n    - exception_rte > 0.06\n",
        f"7: {_W}.rollback_trigger.0: unknown metric 'exception_rte' (did you mean"
        f" 'exception_rate'?): define it under metrics, or use a built-in one ({_BUILTINS})",
        id="trigger-metric-typo",
    ),
    P(
        BARE + "  rollback_trigger:\n    - reviewer_queue_sla_breach > 0\n",
        f"7: {_W}.rollback_trigger.0: reviewer_queue_sla_breach is true or false: compare it with"
        " == true or == false, not '> 0'",
        id="trigger-boolean-metric-numeric",
    ),
    P(
        BARE + "  rollback_trigger:\n    - reviewer_queue_sla_breach == baseline\n",
        f"7: {_W}.rollback_trigger.0: reviewer_queue_sla_breach is true or false: compare it with"
        " == true or == false, not '== baseline'",
        id="trigger-boolean-metric-baseline",
    ),
    P(
        BARE + "  rollback_trigger:\n    - critical_regressions == true\n",
        f"7: {_W}.rollback_trigger.0: critical_regressions is a number: compare it with a number,"
        " not '== true'",
        id="trigger-count-compared-with-boolean",
    ),
    P(
        BARE
        + "  rollback_trigger:\n    - mine == true\n  metrics:\n    mine: {numerator: a, denominator: b}\n",
        f"7: {_W}.rollback_trigger.0: mine is a number: compare it with a number, not '== true'",
        id="trigger-custom-rate-compared-with-boolean",
    ),
    P(
        BARE + "  rollback_trigger:\n    - {expresion: exception_rate > 0.06}\n",
        f"7: {_W}.rollback_trigger.0.expression: required field missing\n"
        f"7: {_W}.rollback_trigger.0.expresion: unknown field (did you mean 'expression'?)",
        id="trigger-mapping-typo",
    ),
    # --- steps
    P(
        BARE + "  steps: [0.1, 0.5, 0.25, 1.0]\n",
        f"6: {_W}.steps: must be strictly ascending, got [0.1, 0.5, 0.25, 1.0]",
        id="steps-unsorted",
    ),
    P(
        BARE + "  steps: [0.1, 0.5]\n",
        f"6: {_W}.steps: the last step must be 1.0, got 0.5",
        id="steps-not-ending-at-one",
    ),
    P(
        BARE + "  steps: [0.2, 1.0]\n",
        f"6: {_W}.steps: the first step must equal canary_traffic (0.1), got 0.2",
        id="steps-first-not-canary",
    ),
    P(BARE + "  steps: []\n", f"6: {_W}.steps: must not be empty", id="steps-empty"),
    P(
        BARE + "  steps: [0.1, 0, 1.0]\n",
        f"6: {_W}.steps.1: must be > 0 and <= 1, got 0",
        id="steps-item-zero",
    ),
    P(
        BARE + "  steps:\n    - 0.1\n    - 1.5\n",
        f"8: {_W}.steps.1: must be > 0 and <= 1, got 1.5",
        id="steps-item-on-its-own-line",
    ),
    P(BARE + "  steps: 0.1\n", f"6: {_W}.steps: must be a list, got 0.1", id="steps-scalar"),
    # --- metrics
    P(
        BARE + "  metrics:\n    m: {query: q, numerator: n, denominator: d}\n",
        f"7: {_W}.metrics.m: give either query, or numerator and denominator, not both",
        id="metric-both-forms",
    ),
    P(
        BARE + "  metrics:\n    m: {}\n",
        f"7: {_W}.metrics.m: needs query, or numerator and denominator",
        id="metric-no-form",
    ),
    P(
        BARE + "  metrics:\n    m: {numerator: n}\n",
        f"7: {_W}.metrics.m: a rate needs both numerator and denominator",
        id="metric-half-rate",
    ),
    P(
        BARE + "  metrics:\n    m: {query: '  '}\n",
        f"7: {_W}.metrics.m.query: a query must not be empty",
        id="metric-blank-query",
    ),
    P(
        BARE + '  metrics:\n    m:\n      query: sum(x{w="{{workflw}}"})\n',
        f"8: {_W}.metrics.m.query: unknown template variable '{{{{workflw}}}}' (known: {{{{workflow}}}},"
        " {{window}}, {{track}})",
        id="metric-template-typo",
    ),
    P(
        BARE + "  metrics:\n    m: {qeury: x}\n",
        f"7: {_W}.metrics.m.qeury: unknown field (did you mean 'query'?)",
        id="metric-field-typo",
    ),
    P(
        BARE + "  metrics:\n    bad-name: {query: x}\n",
        f"6: {_W}.metrics: metric name 'bad-name' is not a valid identifier",
        id="metric-name-with-dash",
    ),
    # --- nested settings
    P(
        BARE + "  prometheus: {url: localhost:9090}\n",
        f"6: {_W}.prometheus.url: must be an http:// or https:// URL, got 'localhost:9090'",
        id="prometheus-url-without-scheme",
    ),
    P(
        BARE + "  prometheus: {timeout: 0}\n",
        f"6: {_W}.prometheus.timeout: must be longer than 0, got 0s",
        id="prometheus-timeout-zero",
    ),
    P(
        BARE + "  prometheus: {headers: [a]}\n",
        f"6: {_W}.prometheus.headers: must be a mapping, got a list",
        id="prometheus-headers-list",
    ),
    P(
        BARE + "  traffic: {kind: istio}\n",
        f"6: {_W}.traffic.kind: must be one of 'configmap', 'httproute', 'deployment', 'file',"
        " 'openfeature', 'patch', 'none', got 'istio'",
        id="traffic-kind-unknown",
    ),
    P(
        BARE + "  traffic: {kind: httproute, name: r}\n",
        f"6: {_W}.traffic: kind httproute needs ai_backend, deterministic_backend",
        id="traffic-httproute-incomplete",
    ),
    P(
        BARE + "  approval: {required_above: 1.0}\n",
        f"6: {_W}.approval.required_above: must be >= 0 and < 1, got 1.0",
        id="approval-at-full-share",
    ),
    P(
        BARE + "  approval: {}\n",
        f"6: {_W}.approval.required_above: required field missing",
        id="approval-empty",
    ),
    # --- document shape
    P(
        "workflow_release_gate: [1]\n",
        f"1: {_W}: must be a mapping, got a list",
        id="bare-body-list",
    ),
    P("workflow_release_gate:\n", f"1: {_W}: must be a mapping, got null", id="bare-body-empty"),
    P(
        BARE + "extra: 1\n",
        f"6: extra: unknown field (a bare policy holds only {_W}:)",
        id="bare-extra-top-key",
    ),
    P(
        BARE + "workflow_release_gat: 1\n",
        "6: workflow_release_gat: unknown field (did you mean 'workflow_release_gate'?)",
        id="bare-extra-top-key-typo",
    ),
    P("just text\n", "1: a policy must be a mapping, got 'just text'", id="scalar-document"),
    P("- 1\n- 2\n", "1: a policy must be a mapping, got a list", id="list-document"),
    P(
        "foo: 1\n",
        "1: not a policy: expected workflow_release_gate: or apiVersion: gatectl.io/v1alpha1 with"
        " kind: ReleaseGate",
        id="unrelated-mapping",
    ),
    P(
        "workflow_releas_gate: {}\n",
        "1: not a policy: expected workflow_release_gate: or apiVersion: gatectl.io/v1alpha1 with"
        " kind: ReleaseGate (did you mean 'workflow_release_gate'?)",
        id="bare-key-typo",
    ),
    # --- YAML syntax
    P(
        BARE + "  steps: [0.1\n",
        "7: invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence on line 6)",
        id="unclosed-flow-sequence",
    ),
    P(
        "workflow_release_gate:\n\tcanary_traffic: 0.1\n",
        "2: invalid YAML: found character that cannot start any token (while scanning for the"
        " next token on line 2); indent with spaces, not tabs",
        id="tab-indentation",
    ),
    P(
        "a: b: c\n",
        "1: invalid YAML: mapping values are not allowed in this context",
        id="colon-in-plain-value",
    ),
    P(
        "a: !!int x\n",
        "1: a: invalid YAML: cannot read 'x' as !!int (expected a whole number)",
        id="bad-explicit-tag",
    ),
    P("a: &x [*x]\n", "1: a.0: recursive alias", id="recursive-alias"),
    # --- the ReleaseGate form
    P(
        RESOURCE.replace("v1alpha1", "v1"),
        "1: apiVersion: must be gatectl.io/v1alpha1, got 'gatectl.io/v1'",
        id="wrong-api-version",
    ),
    P(
        RESOURCE.replace("kind: ReleaseGate", "kind: Gate"),
        "2: kind: must be ReleaseGate, got 'Gate'",
        id="wrong-kind",
    ),
    P(
        RESOURCE.replace("kind: ReleaseGate\n", ""),
        "1: kind: required field missing (must be ReleaseGate)",
        id="kind-missing",
    ),
    P(
        RESOURCE.replace("apiVersion: gatectl.io/v1alpha1\n", ""),
        "1: apiVersion: required field missing (must be gatectl.io/v1alpha1)",
        id="api-version-missing",
    ),
    P(
        RESOURCE.replace("{name: a}", "{namespace: x}"),
        "3: metadata.name: required field missing",
        id="name-missing",
    ),
    P(
        RESOURCE.replace("metadata: {name: a}\n", ""),
        "1: metadata.name: required field missing",
        id="metadata-missing",
    ),
    P(
        RESOURCE.replace("{name: a}", "[a]"),
        "3: metadata: must be a mapping, got a list",
        id="metadata-list",
    ),
    P(
        RESOURCE.replace("{name: a}", "{name: 5, namespace: ''}"),
        "3: metadata.name: must be a name, got 5\n3: metadata.namespace: must be a name, got ''",
        id="name-and-namespace-invalid",
    ),
    P(RESOURCE.split("spec:", maxsplit=1)[0], "1: spec: required field missing", id="spec-missing"),
    P(
        RESOURCE.split("spec:", maxsplit=1)[0] + "spec: hello\n",
        "4: spec: must be a mapping, got 'hello'",
        id="spec-scalar",
    ),
    P(
        RESOURCE + "specs: {}\n",
        "8: specs: unknown field (did you mean 'spec'?)",
        id="top-level-typo",
    ),
    P(
        RESOURCE.replace("0.1", "1.5").replace("success_criteria", "succes_criteria"),
        "4: spec.success_criteria: required field missing\n"
        "5: spec.canary_traffic: must be > 0 and <= 1, got 1.5\n"
        "7: spec.succes_criteria: unknown field (did you mean 'success_criteria'?)",
        id="several-problems-in-line-order",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_malformed_policy_message(text: str, expected: str) -> None:
    result = load_policies([write("p.yaml", text)])
    assert result.gates == []
    assert not result.ok
    assert "\n".join(messages(result)) == "\n".join(
        f"p.yaml:{line}" for line in expected.split("\n")
    )


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_malformed_policy_raises_first_problem_from_load_gates(text: str, expected: str) -> None:
    write("p.yaml", text)
    with pytest.raises(PolicyError) as caught:
        load_gates(["p.yaml"])
    assert str(caught.value) == "p.yaml:" + expected.split("\n", maxsplit=1)[0]
    assert caught.value.file == "p.yaml"


def test_problem_carries_file_line_and_path_separately() -> None:
    (problem,) = load_policies([write("p.yaml", _swap("0.1\n", "1.5\n"))]).problems
    assert (problem.file, problem.line, problem.path, problem.message) == (
        "p.yaml",
        2,
        "workflow_release_gate.canary_traffic",
        "must be > 0 and <= 1, got 1.5",
    )


# --- files, directories and names --------------------------------------------------------------


def test_missing_file_is_a_problem() -> None:
    assert messages(load_policies(["nope.yaml"])) == ["nope.yaml: file not found"]


def test_dangling_symlink_is_a_missing_file() -> None:
    os.symlink("gone.yaml", "link.yaml")
    assert messages(load_policies(["link.yaml"])) == ["link.yaml: file not found"]


def test_empty_file_is_a_problem() -> None:
    assert messages(load_policies([write("e.yaml", "")])) == ["e.yaml: empty file: no policy in it"]


def test_file_of_comments_and_separators_is_empty() -> None:
    text = "# only a comment\n---\n---\n"
    assert messages(load_policies([write("c.yaml", text)])) == [
        "c.yaml: empty file: no policy in it"
    ]


def test_directory_without_policies_is_a_problem() -> None:
    write("empty/readme.txt", "nothing")
    write("empty/sub/a.yaml", BARE)
    assert messages(load_policies(["empty"])) == [
        "empty: no policies here (no *.yaml or *.yml files)"
    ]


def test_file_that_is_not_utf8_is_a_problem() -> None:
    Path("bin.yaml").write_bytes(b"workflow_release_gate:\n  name: \xff\xfe\n")
    assert messages(load_policies(["bin.yaml"])) == ["bin.yaml: not UTF-8 text (byte 31)"]


def test_unreadable_file_is_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    write("locked.yaml", BARE)

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    # Root reads any file whatever its mode, so the refusal is simulated at the loader's open().
    monkeypatch.setattr(loader_module, "open", refuse, raising=False)
    assert messages(load_policies(["locked.yaml"])) == [
        "locked.yaml: cannot read file: Permission denied"
    ]


def test_utf8_byte_order_mark_is_accepted() -> None:
    Path("bom.yaml").write_bytes(b"\xef\xbb\xbf" + BARE.encode())
    assert [g.name for g in load_gates(["bom.yaml"])] == ["bom"]


def test_duplicate_names_across_files_name_both_places() -> None:
    write("a.yaml", BARE + "  name: triage\n")
    write("b.yaml", "# second\n" + BARE + "  name: triage\n")
    result = load_policies(["a.yaml", "b.yaml"])
    assert [g.source for g in result.gates] == ["a.yaml:1"]
    assert messages(result) == [
        f"b.yaml:7: {_W}.name: duplicate gate 'default/triage' (also at a.yaml:1)"
    ]


def test_duplicate_resource_names_within_one_namespace() -> None:
    result = load_policies([write("r.yaml", RESOURCE + "---\n" + RESOURCE)])
    assert messages(result) == [
        "r.yaml:11: metadata.name: duplicate gate 'default/a' (also at r.yaml:1)"
    ]


def test_file_stem_clashing_with_resource_name_is_a_duplicate() -> None:
    write("a.yaml", BARE)
    write("b.yaml", RESOURCE)
    assert messages(load_policies(["a.yaml", "b.yaml"])) == [
        "b.yaml:3: metadata.name: duplicate gate 'default/a' (also at a.yaml:1)"
    ]


def test_same_name_in_different_namespaces_is_fine() -> None:
    text = RESOURCE + "---\n" + RESOURCE.replace("{name: a}", "{name: a, namespace: other}")
    assert [g.key for g in load_gates([write("r.yaml", text)])] == ["default/a", "other/a"]


def test_same_file_given_twice_reports_duplicates_not_a_crash() -> None:
    write("a.yaml", BARE)
    result = load_policies(["a.yaml", "a.yaml"])
    assert messages(result) == ["a.yaml:1: duplicate gate 'default/a' (also at a.yaml:1)"]


def test_good_documents_survive_a_bad_neighbour() -> None:
    text = BARE + "  name: good\n---\n" + BARE.replace("0.1\n", "2\n")
    result = load_policies([write("mixed.yaml", text)])
    assert [g.name for g in result.gates] == ["good"]
    assert messages(result) == [f"mixed.yaml:9: {_W}.canary_traffic: must be > 0 and <= 1, got 2"]


def test_alias_bomb_is_refused_not_expanded() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 8)]
    result = load_policies([write("bomb.yaml", "\n".join(lines) + "\n")])
    assert messages(result) == [
        "bomb.yaml:1: too large: over 100000 values once aliases are expanded"
    ]


def test_merge_keys_are_expanded() -> None:
    text = """\
    defaults: &defaults {canary_traffic: 0.1, promotion_window: 1h}
    """
    text = (
        textwrap.dedent(text)
        + "---\n"
        + BARE.replace(
            "  canary_traffic: 0.1\n  promotion_window: 1h\n",
            "  <<: {canary_traffic: 0.2, promotion_window: 2h}\n",
        )
    )
    result = load_policies([write("merge.yaml", text)])
    assert messages(result) == [
        "merge.yaml:1: not a policy: expected workflow_release_gate: or apiVersion:"
        " gatectl.io/v1alpha1 with kind: ReleaseGate"
    ]
    (gate,) = result.gates
    assert (gate.spec.canary_traffic, gate.spec.promotion_window) == (0.2, 7200.0)


def test_load_gates_returns_gates_when_nothing_is_wrong() -> None:
    write("a.yaml", BARE)
    write("b.yaml", RESOURCE.replace("name: a", "name: b"))
    assert [g.key for g in load_gates(["a.yaml", "b.yaml"])] == ["default/a", "default/b"]
