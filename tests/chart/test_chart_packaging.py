"""The container image without a Docker engine: the Dockerfile read statically, its wheel for real.

There is no Docker engine here, so the Dockerfile is read, not built: multi-stage,
a pinned slim Python base, never ``latest``, a numeric non-root user, the
``gatectl`` entrypoint, no compiler in the final stage. What its first stage
does (``pip wheel .``) is done for real, and the wheel is installed into a clean
virtualenv where ``gatectl --version`` must run.
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from chartlib import CHART_DIR, REPO

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            match = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            assert match, line
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m[1] or m[2]], match[1])
            stages.append(Stage(image=image, name=match[2]))
        elif keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        else:
            assert stages, f"{keyword} before FROM"
            stages[-1].instructions.append((keyword, rest))
    return args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())[1]


def test_dockerfile_is_multi_stage_with_a_named_build_stage(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    assert stages[0].name == "build"


def test_every_base_image_is_a_pinned_slim_python(stages: list[Stage]) -> None:
    for stage in stages:
        assert re.fullmatch(
            r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", stage.image
        ), stage.image
    assert "latest" not in DOCKERFILE.read_text()


def test_wheel_is_built_in_the_first_stage_and_installed_offline_in_the_last(
    stages: list[Stage],
) -> None:
    build, final = stages[0], stages[-1]
    assert any("pip wheel" in run for run in build.all("RUN"))
    installs = [run for run in final.all("RUN") if "pip install" in run]
    assert installs and all("--no-index" in run and "from=build" in run for run in installs)
    assert final.image == build.image


def test_final_stage_runs_as_numeric_non_root_user(stages: list[Stage]) -> None:
    users = stages[-1].all("USER")
    assert users, "the final stage must set USER"
    user = users[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0
    assert user == "65532", "the chart's securityContext runs as 65532"


def test_entrypoint_is_gatectl_in_exec_form(stages: list[Stage]) -> None:
    (entrypoint,) = stages[-1].all("ENTRYPOINT")
    assert json.loads(entrypoint) == ["gatectl"]


def test_final_stage_installs_no_compiler(stages: list[Stage]) -> None:
    final = " ".join(stages[-1].all("RUN"))
    for tool in ("gcc", "g++", "build-essential", "clang", "make ", "apt-get install", "apk add"):
        assert tool not in final, tool
    assert "pip uninstall" in final, "pip itself should not ship in the final image"


def test_image_listens_on_the_port_the_chart_probes(stages: list[Stage]) -> None:
    exposed = stages[-1].all("EXPOSE")
    values = (CHART_DIR / "values.yaml").read_text()
    assert exposed == ["8080"] and "port: 8080" in values


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        body = body.rstrip("/")
        if fnmatch.fnmatch(path, body) or fnmatch.fnmatch(path, body.replace("**/", "*/")):
            ignored = not negate
        elif path.startswith(body + "/") and not negate:
            ignored = True
        elif negate and path.startswith(body + "/"):
            ignored = False
    return ignored


def test_dockerignore_keeps_the_build_context_to_what_the_build_copies(
    stages: list[Stage],
) -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for path in (".venv", ".git", "tests", "charts", "docs", ".venv/lib/x.py", "gatectl/x.pyc"):
        assert _ignored(path, patterns), path
    for copy in stages[0].all("COPY"):
        for source in copy.split()[:-1]:
            if source.startswith("--"):
                continue
            assert not _ignored(source.rstrip("/").rstrip("*"), patterns), source
            if not source.endswith("*"):  # a glob may match nothing (README.md*)
                assert (REPO / source).exists(), f"COPY {source}: not in the repository"


@pytest.mark.slow
def test_wheel_installs_into_a_clean_venv_and_gatectl_version_runs(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-w",
            str(wheels),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = wheels.glob("gatectl-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "gatectl = gatectl.cli:main" in archive.read(entry_points).decode()
    assert {
        "gatectl/adapters/exposition.py",
        "gatectl/adapters/serving.py",
        "gatectl/demo/localprom.py",
        "gatectl/py.typed",
    } <= names
    # the example policies ship with the package, so `gatectl demo` runs from a wheel
    assert {
        "gatectl/data/policies/ticket-triage.yaml",
        "gatectl/data/policies/document-intake.yaml",
        "gatectl/data/policies/request-routing.yaml",
    } <= names
    assert not any(n.startswith(("tests/", "charts/")) for n in names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", str(wheel)],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    version = subprocess.run(
        [str(venv / "bin" / "gatectl"), "--version"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=tmp_path,
    )
    assert version.returncode == 0, version.stdout + version.stderr
    assert re.fullmatch(r"gatectl \d+\.\d+\.\d+\S*\n", version.stdout), version.stdout
    validate = subprocess.run(
        [str(python), "-c", "from gatectl.demo.run import bundled_policies as b; print(b())"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=tmp_path,
    )
    assert validate.returncode == 0, validate.stderr
    assert str(venv) in validate.stdout, validate.stdout  # found inside the installed package
