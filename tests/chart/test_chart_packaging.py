"""The container image without a Docker engine: the Dockerfile read statically, its steps for real.

There is no Docker engine here, so the Dockerfile is read, not built: multi-stage,
a slim Python base pinned by digest, dependencies only from the hashed lock as
wheels, no ``||`` fallback, the LICENSE shipped, a numeric non-root user, the
``gatectl`` entrypoint, no compiler in the final stage. What its build stage does
(the hashed install, the offline wheel build, ``pip check``) is done for real in
clean virtualenvs, where ``gatectl --version`` must then run.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from chartlib import CHART_DIR, REPO
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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


def test_every_base_image_is_a_slim_python_pinned_by_digest(stages: list[Stage]) -> None:
    for stage in stages:
        assert re.fullmatch(
            r"python:3\.11(\.\d+)?-slim(-[a-z]+)?@sha256:[0-9a-f]{64}", stage.image
        ), f"{stage.image}: the base must be pinned by digest"
    assert len({stage.image for stage in stages}) == 1, "every stage on the same base"
    assert "latest" not in DOCKERFILE.read_text()


def _runs(stages: list[Stage]) -> list[str]:
    return [run for stage in stages for run in stage.all("RUN")]


def _pip_commands(run: str, verb: str) -> list[str]:
    """Each ``pip <verb> ...`` command of a RUN line (split at ``&&``)."""
    return [part.strip() for part in run.split("&&") if re.search(rf"\bpip {verb}\b", part)]


def test_dependencies_come_from_the_hashed_lock_as_wheels_only(stages: list[Stage]) -> None:
    build = stages[0]
    installs = [cmd for run in build.all("RUN") for cmd in _pip_commands(run, "install")]
    from_lock = [cmd for cmd in installs if "requirements/lock.txt" in cmd]
    assert from_lock, "the build stage installs the runtime dependencies from the lock"
    for cmd in installs:
        if "-r requirements/" in cmd:
            for flag in ("--require-hashes", "--only-binary=:all:", "--no-deps"):
                assert flag in cmd, f"{cmd}: {flag} missing"
        else:  # only gatectl's own wheel, built here, without reaching an index
            assert "--no-deps" in cmd and "--no-index" in cmd and "/wheels/gatectl-" in cmd, cmd
    wheels = [cmd for run in build.all("RUN") for cmd in _pip_commands(run, "wheel")]
    assert wheels and all("--no-build-isolation" in w and "--no-index" in w for w in wheels)
    assert any("pip check" in run for run in build.all("RUN")), "pip check proves the lock whole"


def test_the_final_stage_installs_nothing_and_copies_the_built_virtualenv(
    stages: list[Stage],
) -> None:
    final = stages[-1]
    assert not [cmd for run in final.all("RUN") for cmd in _pip_commands(run, "install")]
    assert "--from=build /opt/gatectl /opt/gatectl" in final.all("COPY")
    assert any(env.startswith("PATH=/opt/gatectl/bin:") for env in final.all("ENV"))


def test_no_fallback_can_hide_a_failed_step(stages: list[Stage]) -> None:
    """A failed wheels-only install must fail the build, not retry another way."""
    for run in _runs(stages):
        assert "||" not in run, run
        assert not re.search(r";\s*(true|:)\b|set \+e", run), run


def test_the_license_ships_in_the_image_and_the_wheel_metadata(stages: list[Stage]) -> None:
    final = stages[-1]
    assert "LICENSE /usr/share/licenses/gatectl/LICENSE" in final.all("COPY")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    (label,) = [lbl for lbl in final.all("LABEL") if "licenses=" in lbl]
    assert 'org.opencontainers.image.licenses="Apache-2.0"' in label
    assert "Apache License" in (REPO / "LICENSE").read_text()[:200]


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
    for copy in (c for stage in stages for c in stage.all("COPY") if "--from=" not in c):
        for source in copy.split()[:-1]:
            if source.startswith("--"):
                continue
            assert not _ignored(source.rstrip("/").rstrip("*"), patterns), source
            if not source.endswith("*"):  # a glob may match nothing (README.md*)
                assert (REPO / source).exists(), f"COPY {source}: not in the repository"


def _locked(path: Path) -> dict[str, tuple[str, list[str]]]:
    """``{name: (version, hashes)}`` of a ``--generate-hashes`` requirements file."""
    joined = re.sub(r"\\\n", " ", path.read_text())
    locked: dict[str, tuple[str, list[str]]] = {}
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)((?:\s+--hash=sha256:[0-9a-f]{64})+)", line)
        assert match, f"{path.name}: not an exact pin with hashes: {line[:80]}"
        locked[canonicalize_name(match[1])] = (match[2], re.findall(r"[0-9a-f]{64}", match[3]))
    return locked


@pytest.mark.parametrize(
    ("lock", "requirements"),
    [
        pytest.param("lock.txt", ("project", "dependencies"), id="runtime"),
        pytest.param("build.txt", ("build-system", "requires"), id="build"),
    ],
)
def test_the_lock_pins_every_declared_requirement_within_its_range(
    lock: str, requirements: tuple[str, str]
) -> None:
    """A floor raised in pyproject.toml without a new lock fails here, not in the image build."""
    locked = _locked(REPO / "requirements" / lock)
    table, key = requirements
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())[table][key]
    assert declared
    for text in declared:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{lock}: {name} is not locked"
        version, hashes = locked[name]
        assert requirement.specifier.contains(version), f"{lock}: {name}=={version} not {text}"
        assert hashes


@pytest.mark.slow
def test_the_build_stage_steps_install_the_lock_and_gatectl_runs(tmp_path: Path) -> None:
    """The build stage's pip steps, for real on this machine (linux, CPython 3.11).

    The hashed lock installs as wheels only and is complete (``pip check``); the
    gatectl wheel builds offline with the locked setuptools, carries its license and
    policies, and ``gatectl --version`` runs from the resulting virtualenv.
    """
    requirements = REPO / "requirements"

    def run(*args: str | Path) -> str:
        done = subprocess.run(
            [str(a) for a in args],
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
            cwd=tmp_path,
            env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        )
        assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
        return done.stdout

    builder, image = tmp_path / "builder", tmp_path / "opt-gatectl"

    def pip(venv: Path, *args: str | Path) -> str:
        return run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", *args)

    for venv in (builder, image):
        run(sys.executable, "-m", "venv", "--without-pip", venv)
    # the Dockerfile's flags; --no-compile only saves time here (bytecode is not under test)
    hashed = (
        "install",
        "-q",
        "--no-compile",
        "--require-hashes",
        "--only-binary=:all:",
        "--no-deps",
    )
    pip(image, *hashed, "-r", requirements / "lock.txt")
    pip(builder, *hashed, "-r", requirements / "build.txt")
    wheels = tmp_path / "wheels"
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(
        REPO / "gatectl", source / "gatectl", ignore=shutil.ignore_patterns("__pycache__")
    )
    pip(builder, "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
        "--wheel-dir", wheels, source)  # fmt: skip
    (wheel,) = wheels.glob("gatectl-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "gatectl = gatectl.cli:main" in archive.read(entry_points).decode()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
    assert "License-Expression: Apache-2.0" in metadata.decode()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
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

    pip(image, "install", "-q", "--no-compile", "--no-deps", "--no-index", wheel)
    pip(image, "check")
    installed = {
        canonicalize_name(line.partition("==")[0]): line.partition("==")[2]
        for line in pip(image, "freeze", "--all").splitlines()
    }
    locked = _locked(requirements / "lock.txt")
    assert {n: v for n, v in installed.items() if n in locked} == {
        n: v for n, (v, _) in locked.items()
    }
    version = run(image / "bin" / "gatectl", "--version")
    assert re.fullmatch(r"gatectl \d+\.\d+\.\d+\S*\n", version), version
    found = run(image / "bin" / "python", "-c",
                "from gatectl.demo.run import bundled_policies as b; print(b())")  # fmt: skip
    assert str(image) in found, found  # found inside the installed package
