# syntax=docker/dockerfile:1
# The gateway image (CPU): the embedded default, the same install path as the README (pip install .).
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
RUN python -m venv /opt/rasst
COPY pyproject.toml README.md ./
COPY server ./server
COPY retriever ./retriever
COPY glossary ./glossary
RUN /opt/rasst/bin/pip install --no-cache-dir '.[postgres]'

FROM python:3.11-slim-bookworm
RUN useradd --create-home --uid 10001 rasst
COPY --from=build /opt/rasst /opt/rasst
ENV PATH=/opt/rasst/bin:$PATH \
    RASST_HOST=0.0.0.0 \
    RASST_PORT=8000 \
    RASST_DATA_DIR=/var/lib/rasst \
    RASST_LOG_JSON=true
RUN mkdir -p /var/lib/rasst && chown rasst:rasst /var/lib/rasst
USER rasst
VOLUME ["/var/lib/rasst"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status != 200)"]
STOPSIGNAL SIGTERM
CMD ["rasst", "serve", "--host", "0.0.0.0"]
