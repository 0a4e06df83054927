"""The chart's audit log: sinks become flags, the buffer gets a volume, bad values are refused."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import helm_python as helm
import pytest
from chartlib import Manifest, one, render

BUFFER = "/var/lib/gatectl/audit/$(POD_NAME)"


def pod(manifests: list[Manifest]) -> tuple[dict[str, Any], dict[str, Any]]:
    spec = one(manifests, "Deployment")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    return spec, container


def flag_values(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args) if arg == flag]


def test_by_default_records_go_to_stdout_through_a_buffer_on_an_emptydir(chart: Any) -> None:
    spec, container = pod(render(chart))
    args = container["args"]
    assert "--audit-stdout" in args
    assert flag_values(args, "--audit-buffer") == [BUFFER]
    assert flag_values(args, "--audit-buffer-mib") == ["256"]
    assert "--audit-url" not in args and "--audit-log" not in args
    [mount] = [m for m in container["volumeMounts"] if m["name"] == "audit"]
    assert mount["mountPath"] == "/var/lib/gatectl/audit"
    [volume] = [v for v in spec["volumes"] if v["name"] == "audit"]
    assert volume == {"name": "audit", "emptyDir": {"sizeLimit": "1Gi"}}
    assert "POD_NAME" in {e["name"] for e in container["env"]}  # what $(POD_NAME) expands


def test_an_http_sink_a_file_and_a_claim_become_flags_and_the_volume(chart: Any) -> None:
    values = {
        "audit": {
            "stdout": False,
            "url": "https://audit.example/events",
            "headers": {"X-Tenant": "platform"},
            "source": "/clusters/prod",
            "file": True,
            "bufferMiB": 64,
            "volume": {"existingClaim": "gatectl-audit"},
        }
    }
    spec, container = pod(render(chart, values))
    args = container["args"]
    assert "--audit-stdout" not in args
    assert flag_values(args, "--audit-url") == ["https://audit.example/events"]
    assert flag_values(args, "--audit-header") == ["X-Tenant: platform"]
    assert flag_values(args, "--audit-source") == ["/clusters/prod"]
    assert flag_values(args, "--audit-log") == ["/var/lib/gatectl/audit/audit-$(POD_NAME).jsonl"]
    assert flag_values(args, "--audit-buffer-mib") == ["64"]
    [volume] = [v for v in spec["volumes"] if v["name"] == "audit"]
    assert volume == {"name": "audit", "persistentVolumeClaim": {"claimName": "gatectl-audit"}}


def test_with_every_sink_off_there_is_no_audit_flag_nor_volume(chart: Any) -> None:
    spec, container = pod(render(chart, {"audit": {"stdout": False}}))
    assert not [a for a in container["args"] if a.startswith("--audit")]
    assert not [v for v in spec["volumes"] if v["name"] == "audit"]


def test_every_audit_flag_the_chart_passes_is_one_gatectl_run_takes(chart: Any) -> None:
    values = {"audit": {"url": "https://a.example/e", "headers": {"A": "b"}, "file": True}}
    _, container = pod(render(chart, values))
    flags = {a for a in container["args"] if a.startswith("--audit")}
    assert flags == {
        "--audit-stdout",
        "--audit-url",
        "--audit-header",
        "--audit-source",
        "--audit-log",
        "--audit-buffer",
        "--audit-buffer-mib",
    }
    usage = subprocess.run(
        [sys.executable, "-m", "gatectl", "run", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert {f for f in flags if f not in usage} == set()


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        pytest.param({"audit": {"url": "audit.example"}}, "/audit/url", id="url-without-scheme"),
        pytest.param({"audit": {"bufferMiB": 0}}, "/audit/bufferMiB", id="empty-buffer"),
        pytest.param({"audit": {"headers": {"X-A": 1}}}, "/audit/headers", id="header-not-text"),
        pytest.param({"audit": {"stdot": True}}, "stdot", id="misspelt-key"),
        pytest.param(
            {"audit": {"volume": {"sizeLimit": "lots"}}}, "/audit/volume/sizeLimit", id="bad-size"
        ),
    ],
)
def test_bad_audit_values_are_refused(chart: Any, values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=re.escape(complaint)):
        chart.validate_schema(values)
