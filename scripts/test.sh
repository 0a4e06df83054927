#!/usr/bin/env bash
# Sets up (scripts/setup.sh), then runs every check: ruff, mypy --strict, the import-layer
# contracts, the whole pytest suite (real Prometheus included), and the unit tests again
# on the lowest dependency versions pyproject.toml allows.
set -euo pipefail
cd "$(dirname "$0")/.."
GATECTL_SETUP_TESTS=1 bash scripts/setup.sh
# Test binaries built from Go modules, cached by version under ~/.cache/gatectl (the first
# build on a fresh machine takes ~10 minutes; later runs reuse them in a second): a real
# etcd, kube-apiserver and kubectl for the operator tests, flagd's evaluator for the
# OpenFeature tests.
echo "== test binaries (Go modules, cached)" >&2
bash scripts/kube-binaries.sh >/dev/null
bash scripts/flagd-binary.sh >/dev/null
echo "== ruff" >&2
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy" >&2
.venv/bin/mypy gatectl
echo "== import layers" >&2
.venv/bin/lint-imports --no-logo
echo "== pytest" >&2
.venv/bin/pytest "$@"

# The floors in pyproject.toml are promises: install exactly the lowest allowed version
# of each direct dependency (the dev tools are pinned, so they stay as they are) into a
# fresh .venv-lowest and run the unit tests there. A floor that cannot be installed as
# written (another dependency needs more) fails here too: raise it to what installs.
echo "== unit tests on the lowest allowed dependency versions (.venv-lowest)" >&2
rm -rf .venv-lowest
.venv/bin/python -m venv --without-pip .venv-lowest
.venv/bin/uv pip install --quiet --python .venv-lowest/bin/python \
  --resolution lowest-direct -e '.[dev]'
.venv-lowest/bin/python - <<'PY'
"""Each runtime dependency is installed at exactly the floor pyproject.toml declares."""
import sys
from importlib.metadata import requires, version

from packaging.requirements import Requirement
from packaging.version import Version

wrong = []
for text in requires("gatectl") or []:
    requirement = Requirement(text)
    if requirement.marker is not None:
        continue  # an extra's requirement
    floors = [s.version for s in requirement.specifier if s.operator == ">="]
    installed = version(requirement.name)
    if len(floors) != 1 or Version(installed) != Version(floors[0]):
        wrong.append(f"{requirement}: installed {installed}")
    print(f"  {requirement.name}=={installed}", file=sys.stderr)
if wrong:
    sys.exit("the lowest install does not match the declared floors:\n  " + "\n  ".join(wrong))
PY
.venv-lowest/bin/pytest -q -p no:cacheprovider tests/core tests/policy tests/engine tests/adapters tests/cli
