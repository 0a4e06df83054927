# syntax=docker/dockerfile:1.7
# gatectl's container image: `gatectl run --kubernetes ...` in the Helm chart.
#
# The base is pinned by digest: the multi-arch index (linux/amd64, linux/arm64) of the
# official python:3.11.17-slim-trixie, which python:3.11-slim pointed to when it was
# pinned. Refresh it on purpose, with the lock: `docker buildx imagetools inspect
# python:3.11-slim`, then regenerate requirements/lock.txt (its header has the command).
#
# Stage 1 installs the runtime dependencies from requirements/lock.txt (every version
# pinned, every file checked against its hash, wheels only: a dependency without a wheel
# for this platform fails the build, there is no fallback to compiling it) into the
# virtualenv /opt/gatectl, builds the gatectl wheel offline with the hash-locked
# setuptools of requirements/build.txt, installs it without dependencies and runs
# `pip check` (the lock is complete). Stage 2 copies that virtualenv alone into a fresh
# base: no compiler, no build tools, no pip, the LICENSE in /usr/share/licenses/gatectl,
# the numeric non-root user 65532, and nothing written at run time (bytecode is compiled
# here; HOME is /tmp, which the chart mounts as an emptyDir under a read-only root).

ARG PYTHON_IMAGE=python:3.11.17-slim-trixie@sha256:45037981b62b34b44602584fccbc4d884d5f7dc92c7ee86bb38a698a79fe1e51

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY requirements/lock.txt requirements/build.txt requirements/
RUN python -m venv /opt/gatectl \
    && /opt/gatectl/bin/pip install --require-hashes --only-binary=:all: --no-deps \
        -r requirements/lock.txt \
    && pip install --require-hashes --only-binary=:all: --no-deps -r requirements/build.txt
COPY pyproject.toml README.md LICENSE ./
COPY gatectl/ gatectl/
RUN pip wheel --no-deps --no-build-isolation --no-index --wheel-dir /wheels . \
    && /opt/gatectl/bin/pip install --no-deps --no-index /wheels/gatectl-*.whl \
    && /opt/gatectl/bin/pip check \
    && /opt/gatectl/bin/pip uninstall --yes pip \
    && /opt/gatectl/bin/python -m compileall -q /opt/gatectl/lib

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/gatectl/bin:$PATH \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/gatectl /opt/gatectl
COPY LICENSE /usr/share/licenses/gatectl/LICENSE
RUN /usr/local/bin/python -m pip uninstall --yes pip setuptools wheel \
    && gatectl --version
LABEL org.opencontainers.image.title="gatectl" \
      org.opencontainers.image.description="Canary release gate for AI-enabled workflows" \
      org.opencontainers.image.licenses="Apache-2.0"
USER 65532:65532
WORKDIR /tmp
EXPOSE 8080
ENTRYPOINT ["gatectl"]
CMD ["--help"]
