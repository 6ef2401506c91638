# One-command entry points.  `make reproduce` runs the whole study on the default config;
# `make test` runs the test suite.  Both create .venv (python3 -m venv) and install the project
# with its pinned dependencies first; a stamp file makes that step a no-op until pyproject.toml
# changes.  Users with their own environment can run `snakemake --cores all` directly.
# `make reproduce` installs TeX Live first when latexmk is missing and it runs as root on a system
# with apt-get (Debian/Ubuntu; INSTALL_TEX=no skips that); otherwise the workflow skips only the PDF
# (manuscript.enabled: auto) and says so in one line.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= all
SNAKEMAKE_ARGS ?=
PYTEST_ARGS ?=
INSTALL_TEX ?= auto
# Debian/Ubuntu packages for the manuscript (the same list as crbnn.report.manuscript.TEXLIVE_PACKAGES)
TEXLIVE_PACKAGES := latexmk texlive-latex-base texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended texlive-science

.PHONY: all reproduce test lint dryrun install clean help tex tex-if-missing reference-record slurm-test

all: help

help:
	@echo "make reproduce   install (.venv) and run the whole workflow on config/config.yaml"
	@echo "                 (as root with apt-get and no latexmk: installs TeX Live first)"
	@echo "make test        install (.venv) and run the whole test suite (pytest)"
	@echo "make lint        snakefmt --check and snakemake --lint"
	@echo "make dryrun      dry runs of the default, test and paper configs and the nine-unknown overlay"
	@echo "make tex         apt-get install the TeX Live packages of the manuscript (root, Debian/Ubuntu)"
	@echo "make reference-record RUN=<dir>  write docs/reference-run.json from a finished run and"
	@echo "                 rewrite the README block generated from it"
	@echo "make slurm-test  (root, Debian) single-node SLURM from apt packages, the tiny workflow through"
	@echo "                 profiles/slurm with a cancelled job and a killed slurmd, compared with a local run"
	@echo "make clean       remove results/ and resources/ (keeps .venv)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

reproduce: $(STAMP) tex-if-missing
	$(BIN)/snakemake --cores $(CORES) $(SNAKEMAKE_ARGS)

tex:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(TEXLIVE_PACKAGES)

# Not fatal: without TeX the workflow still runs and skips only the PDF (manuscript.enabled: auto).
tex-if-missing:
	@if [ "$(INSTALL_TEX)" != no ] && ! command -v latexmk >/dev/null 2>&1 \
	    && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "make: latexmk not found; installing TeX Live (apt-get, ~2-5 min; INSTALL_TEX=no skips)"; \
	    $(MAKE) --no-print-directory tex || echo "make: TeX Live installation failed; the run skips the PDF"; \
	fi

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/snakefmt --check .
	$(BIN)/snakemake --lint

dryrun: $(STAMP)
	$(BIN)/snakemake -n --quiet rules
	$(BIN)/snakemake -n --quiet rules --configfile config/test.yaml
	$(BIN)/snakemake -n --quiet rules --configfile config/paper.yaml
	$(BIN)/snakemake -n --quiet rules --configfile config/config.yaml config/full-nuisance.yaml
	$(BIN)/snakemake -n --quiet rules --configfile config/config.yaml config/seeds.yaml

# docs/reference-run.json from a finished run and the README block generated from it.
# RUN: the run folder (holds results/ and .snakemake/log); CONFIG: its config files; WALL: the
# wall time in s (default: from the newest complete Snakemake log of RUN, i.e. its last invocation).
RUN ?=
CONFIG ?= config/config.yaml
WALL ?=
reference-record: $(STAMP)
	@test -n "$(RUN)" || { echo "usage: make reference-record RUN=<run dir> [CONFIG='config/config.yaml ...']"; exit 2; }
	$(BIN)/python -m crbnn.report.record --run $(RUN) --config $(CONFIG) --out docs/reference-run.json --readme README.md $(if $(WALL),--wall-time $(WALL)) $(if $(BENCH),--bench $(BENCH)) $(if $(INVOCATIONS),--invocations $(INVOCATIONS))

# The SLURM profile on a real single-node SLURM (profiles/slurm/testbed): root and apt-get
# (Debian 12) or the packages installed; inputs from CRBNN_DATA_DIR; CRBNN_SLURM_LOCAL_DIR: a
# finished local run of config/test.yaml to compare with (else one is made); KEEP_SLURM=1 keeps
# the cluster up.  Details: tests/slurm/run_slurm_test.sh.
slurm-test: $(STAMP)
	bash tests/slurm/run_slurm_test.sh

clean:
	rm -rf results resources
