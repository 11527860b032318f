# syntax=docker/dockerfile:1
# The gateway image (CPU only): the embedded default, or the gateway in front of a
# retriever service and vLLM (docker-compose.yml, deploy/k8s/).
#
# It installs the package exactly as the README does (`make install` runs
# `pip install -e .`; an image has no use for an editable install, so `pip install .`):
# tests/deploy/test_install_path.py keeps the two in step.
#
#   docker build -t rasst-gateway .
#   docker run -p 8000:8000 -v rasst-data:/var/lib/rasst rasst-gateway

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/rasst
ENV PATH=/opt/rasst/bin:$PATH
COPY pyproject.toml README.md ./
COPY server ./server
COPY retriever ./retriever
COPY glossary ./glossary
RUN pip install .
# Letter-to-sound for out-of-vocabulary glossary terms trains in ~15 s; do it once here
# so no container start pays it (the cache is named after the dictionary it fits).
ENV RASST_CACHE_DIR=/opt/rasst/cache
RUN python -c "from retriever.pronounce import letter_to_sound; letter_to_sound()" \
 && ls /opt/rasst/cache/letter-to-sound-*.json

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="rasst-gateway" \
      org.opencontainers.image.description="RASST gateway: WebSocket speech translation with glossary retrieval" \
      org.opencontainers.image.licenses="Apache-2.0"
# uid/gid 10001: numeric, so Kubernetes `runAsNonRoot` can verify it.
RUN groupadd --system --gid 10001 rasst \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/rasst --no-create-home rasst \
 && mkdir -p /var/lib/rasst \
 && chown 10001:10001 /var/lib/rasst
COPY --from=build /opt/rasst /opt/rasst
# Settings are RASST_* variables (see .env.example). `rasst serve` flags override
# them, so the command below only passes what a container must differ in.
ENV PATH=/opt/rasst/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    RASST_HOST=0.0.0.0 \
    RASST_PORT=8000 \
    RASST_DATA_DIR=/var/lib/rasst \
    RASST_CACHE_DIR=/opt/rasst/cache \
    RASST_LOG_JSON=true
USER 10001:10001
WORKDIR /var/lib/rasst
VOLUME ["/var/lib/rasst"]
EXPOSE 8000
# Readiness, not liveness: 503 while draining on SIGTERM and until the speech workers are up.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status != 200)"]
# SIGTERM drains live sessions for RASST_SHUTDOWN_GRACE_SECONDS (default 10 s); give the
# container a longer stop timeout (compose: stop_grace_period, Kubernetes:
# terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
CMD ["rasst", "serve", "--host", "0.0.0.0", "--port", "8000", "--json-logs"]
