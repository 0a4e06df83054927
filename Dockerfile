# syntax=docker/dockerfile:1.7
# gatectl's container image: `gatectl run --kubernetes ...` in the Helm chart.
#
# Stage 1 builds a wheel of gatectl and of every dependency; stage 2 installs
# those wheels offline into a fresh slim image and drops pip. No compiler is
# installed in either stage (every dependency ships wheels), none reaches the
# final image, and it runs as the numeric non-root user 65532 with a
# read-only root filesystem (the chart mounts /tmp as an emptyDir).

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gatectl/ gatectl/
RUN pip wheel --only-binary=:all: --wheel-dir /wheels . \
    || pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS runtime
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels gatectl \
    && pip uninstall --yes pip setuptools wheel \
    && gatectl --version
LABEL org.opencontainers.image.title="gatectl" \
      org.opencontainers.image.description="Canary release gate for AI-enabled workflows" \
      org.opencontainers.image.licenses="Apache-2.0"
USER 65532:65532
WORKDIR /tmp
EXPOSE 8080
ENTRYPOINT ["gatectl"]
CMD ["--help"]
