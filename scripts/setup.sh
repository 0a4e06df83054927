#!/usr/bin/env bash
# Installs what gatectl needs on a fresh Debian/Ubuntu machine: Prometheus and promtool
# (Debian package `prometheus`) and a virtualenv in .venv with gatectl and its dev tools.
# Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages, installed only when missing: Prometheus and promtool (the demo and the
# tests), and for the tests alone openssl (certificates for the test kube-apiserver) and
# chromium (the evidence page is opened in a real headless browser).
packages=()
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || packages+=(prometheus)
if [ "${GATECTL_SETUP_TESTS:-}" = 1 ]; then
  command -v openssl >/dev/null 2>&1 || packages+=(openssl)
  command -v chromium >/dev/null 2>&1 || packages+=(chromium)
fi
if [ "${#packages[@]}" -gt 0 ]; then
  echo "setup: installing ${packages[*]} (Debian packages)" >&2
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${packages[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  python3 -m venv .venv
fi
# A failed install stops here with pip's output. Noise is left out: pip's "WARNING:
# Location" lines and setuptools' reminder that an editable install is editable.
pip_install() {
  local output
  if ! output=$(PYTHONWARNINGS="ignore:Editable installation" \
      .venv/bin/python -m pip install -q --disable-pip-version-check "$@" 2>&1); then
    printf '%s\n' "$output" >&2
    echo "setup: pip install $* failed" >&2
    exit 1
  fi
  printf '%s\n' "$output" | grep -v -e '^WARNING: Location' -e '^$' >&2 || true
}
pip_install --upgrade pip
pip_install -e '.[dev]'
.venv/bin/python -c 'import gatectl, httpx, pydantic, yaml, tenacity, prometheus_client, kubernetes' \
  || { echo "setup: the virtualenv is incomplete" >&2; exit 1; }
.venv/bin/uv --version >/dev/null || { echo "setup: uv is missing from .venv" >&2; exit 1; }
