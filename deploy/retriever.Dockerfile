# syntax=docker/dockerfile:1
# The retriever service image (GPU): `python -m retriever.service` with CUDA torch,
# the `neural` extra (transformers, peft) and GPU FAISS.
#
#   docker build -f deploy/retriever.Dockerfile -t rasst-retriever .
#   docker run --gpus all -p 8001:8001 rasst-retriever
#
# One CUDA 12 runtime for everything: torch 2.10.0 is the newest torch whose PyPI
# wheel is a CUDA 12.8 build (2.11+ are CUDA 13), and `faiss-gpu` (the official
# Faiss wheel, CUDA 12, kernels for sm_70 to sm_90 incl. H100/H200) loads the same
# nvidia-*-cu12 libraries. Avoid `faiss-gpu-cu12` (a third-party build without
# sm_90 kernels: "no kernel image is available" on Hopper). The host needs an
# NVIDIA driver for CUDA 12.8 (>= 570) and the NVIDIA container toolkit.

ARG CUDA_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04

FROM ${CUDA_IMAGE} AS build
ARG TORCH_VERSION=2.10.0
ARG FAISS_GPU_VERSION=1.15.1
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# DL3008: apt versions are not pinned; the pinned CUDA_IMAGE fixes the Ubuntu release, and
# pinned package versions would break the build at the next security update.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/rasst
ENV PATH=/opt/rasst/bin:$PATH
# torch first, pinned: the `neural` extra's bare `torch>=2.4` would otherwise take
# whatever CUDA build PyPI has newest.
RUN pip install "torch==${TORCH_VERSION}"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY server ./server
COPY retriever ./retriever
COPY glossary ./glossary
# The package as the README installs it (`pip install .`), with the neural extra
# (DL3013 mistakes the local path for an unpinned PyPI package).
# hadolint ignore=DL3013
RUN pip install ".[neural]"
# The package depends on faiss-cpu (the embedded default); both wheels provide the
# `faiss` module, so swap rather than install side by side.
RUN pip uninstall -y faiss-cpu \
 && pip install "faiss-gpu==${FAISS_GPU_VERSION}" \
 && python -c "import faiss; assert hasattr(faiss, 'StandardGpuResources'), 'faiss has no GPU support'"

FROM ${CUDA_IMAGE}
LABEL org.opencontainers.image.title="rasst-retriever" \
      org.opencontainers.image.description="RASST retriever service: speech-to-term retrieval over a GPU FAISS index" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV DEBIAN_FRONTEND=noninteractive
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 rasst \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/rasst --no-create-home rasst \
 && mkdir -p /var/lib/rasst/hf-cache \
 && chown -R 10001:10001 /var/lib/rasst
COPY --from=build /opt/rasst /opt/rasst
ENV PATH=/opt/rasst/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    RASST_DATA_DIR=/var/lib/rasst \
    HF_HOME=/var/lib/rasst/hf-cache \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER 10001:10001
WORKDIR /var/lib/rasst
VOLUME ["/var/lib/rasst"]
EXPOSE 8001
# /healthz answers only once the service is warm (models loaded in the lifespan).
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8001/healthz', timeout=2).status != 200)"]
STOPSIGNAL SIGTERM
CMD ["python", "-m", "retriever.service", "--host", "0.0.0.0", "--port", "8001"]
