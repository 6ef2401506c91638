# One-command entry points.  `make reproduce` runs the whole study on the default config;
# `make test` runs the test suite.  Both create .venv (python3 -m venv) and install the project
# with its pinned dependencies first; a stamp file makes that step a no-op until pyproject.toml
# changes.  Users with their own environment can run `snakemake --cores all` directly.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= all
SNAKEMAKE_ARGS ?=
PYTEST_ARGS ?=

.PHONY: all reproduce test lint dryrun install clean help

all: help

help:
	@echo "make reproduce   install (.venv) and run the whole workflow on config/config.yaml"
	@echo "make test        install (.venv) and run the whole test suite (pytest)"
	@echo "make lint        snakefmt --check and snakemake --lint"
	@echo "make dryrun      dry runs of the default, test and paper configs"
	@echo "make clean       remove results/ and resources/ (keeps .venv)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

reproduce: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) $(SNAKEMAKE_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/snakefmt --check .
	$(BIN)/snakemake --lint

dryrun: $(STAMP)
	$(BIN)/snakemake -n --quiet rules
	$(BIN)/snakemake -n --quiet rules --configfile config/test.yaml
	$(BIN)/snakemake -n --quiet rules --configfile config/paper.yaml

clean:
	rm -rf results resources
