"""``traffic.kind: openfeature`` and ``patch`` in a policy: what loads, and what is refused where."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatectl.policy import load_policies

P = pytest.param
BARE = """\
workflow_release_gate:
  canary_traffic: 0.1
  promotion_window: 1h
  success_criteria:
    exception_rate: "<= 0.04"
"""
W = "workflow_release_gate.traffic"
VS = "target: {apiVersion: networking.istio.io/v1, kind: VirtualService, name: triage}"
OF = "kind: openfeature, flag: triage-path, ai_variant: llm, deterministic_variant: rules"


@pytest.mark.parametrize(
    ("traffic", "source"),
    [
        P(f"{{{OF}, path: /etc/flagd/flags.json}}", "file", id="openfeature-file"),
        P(f"{{{OF}, name: flags}}", "configmap", id="openfeature-configmap-by-default"),
        P(f"{{{OF}, name: flags, source: featureflag}}", "featureflag", id="openfeature-cr"),
    ],
)
def test_openfeature_sources(tmp_path: Path, traffic: str, source: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(BARE + f"  traffic: {traffic}\n")
    result = load_policies([str(path)])
    assert [p.render() for p in result.problems] == []
    settings = result.gates[0].spec.traffic
    assert settings is not None and settings.flag_source == source


def test_patch_loads(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        BARE + f"  traffic: {{kind: patch, {VS}, ai_weight: /spec/http/0/route/0/weight,"
        " deterministic_weight: /spec/http/0/route/1/weight, total: 1000}\n"
    )
    result = load_policies([str(path)])
    assert [p.render() for p in result.problems] == []
    settings = result.gates[0].spec.traffic
    assert settings is not None and settings.target is not None
    assert (settings.target.api_version, settings.target.kind, settings.total) == (
        "networking.istio.io/v1",
        "VirtualService",
        1000,
    )


@pytest.mark.parametrize(
    ("traffic", "messages"),
    [
        P(
            f"{{{OF}}}",
            [f"{W}: kind openfeature needs name"],
            id="openfeature-needs-a-place",
        ),
        P(
            f"{{{OF}, source: file, name: flags}}",
            [f"{W}: kind openfeature needs path"],
            id="openfeature-file-needs-path",
        ),
        P(
            "{kind: openfeature, name: f}",
            [f"{W}: kind openfeature needs flag, ai_variant, deterministic_variant"],
            id="openfeature-needs-flag-and-variants",
        ),
        P(
            "{kind: openfeature, flag: f, ai_variant: a, deterministic_variant: a, name: x}",
            [f"{W}: ai_variant and deterministic_variant must differ"],
            id="openfeature-same-variant",
        ),
        P(
            f"{{{OF}, name: x, source: flagsmith}}",
            [
                f"{W}.source: must be one of 'file', 'configmap', 'featureflag', got 'flagsmith'",
            ],
            id="openfeature-unknown-source",
        ),
        P(
            "{kind: patch, ai_weight: /spec/a}",
            [f"{W}: kind patch needs target, deterministic_weight"],
            id="patch-needs-target-and-both-weights",
        ),
        P(
            f"{{kind: patch, {VS}, ai_weight: spec/a, deterministic_weight: /spec/b}}",
            [
                f"{W}.ai_weight: expected a JSON pointer like /spec/http/0/route/0/weight,"
                " got 'spec/a'"
            ],
            id="patch-not-a-pointer",
        ),
        P(
            f"{{kind: patch, {VS}, ai_weight: /metadata/labels/w, deterministic_weight: /spec/b}}",
            [f"{W}.ai_weight: '/metadata/labels/w' points outside the object's spec"],
            id="patch-outside-spec",
        ),
        P(
            f"{{kind: patch, {VS}, ai_weight: /spec/a, deterministic_weight: /spec/a}}",
            [f"{W}: ai_weight and deterministic_weight must be different pointers"],
            id="patch-same-pointer",
        ),
        P(
            "{kind: patch, target: {apiVersion: Networking/v1, kind: service, name: s},"
            " ai_weight: /spec/a, deterministic_weight: /spec/b}",
            [
                f"{W}.target.apiVersion: expected GROUP/VERSION like networking.istio.io/v1"
                " (or v1), got 'Networking/v1'",
                f"{W}.target.kind: expected a kind like VirtualService, got 'service'",
            ],
            id="patch-bad-target",
        ),
        P(
            f"{{kind: patch, {VS}, ai_weight: /spec/a, deterministic_weight: /spec/b, total: 0}}",
            [f"{W}.total: must be >= 1 and <= 1000000, got 0"],
            id="patch-total-zero",
        ),
    ],
)
def test_refused_with_file_line_and_field(
    tmp_path: Path, traffic: str, messages: list[str]
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(BARE + f"  traffic: {traffic}\n")
    result = load_policies([str(path)])
    assert result.gates == []
    assert [p.render() for p in result.problems] == [f"{path}:6: {m}" for m in messages]
