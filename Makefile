# qsnn: two commands do all set-up on a fresh machine:
#   make train export     # venv + pinned deps, train the default (digits) model, export it
#   make test             # unit tests (tests/) and RTL simulation (sim/: cocotb, Verilator, Icarus)
# make setup installs qsnn editable with the [test] extra, which pulls in [hw,fpga,sweep]
# (pyproject.toml): everything the suite runs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.qsnn-installed
CONFIG ?= configs/digits.yaml
NAME ?= $(basename $(notdir $(CONFIG)))
RUN ?= runs/$(NAME)
JOBS ?= 2
LANES ?= 4
RUNTIME_WEIGHTS ?=
CLOCK ?=
FASHION_MNIST_DIR := /usr/share/datasets/fashion-mnist

.PHONY: setup train export hw verify bitstream test test-gate lint install-check bench data icarus clean help

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install qsnn with pinned dependencies

train: $(STAMP)  ## train CONFIG (default configs/digits.yaml) into runs/<name>
	$(BIN)/qsnn train --config $(CONFIG) --out $(RUN) --force

export: $(STAMP)  ## export runs/<name> to build/<name>
	$(BIN)/qsnn export $(RUN)

hw: $(STAMP)  ## generate the accelerator for build/<name> into hw/build/<name> (LANES, RUNTIME_WEIGHTS)
	$(BIN)/qsnn hw build/$(NAME) --lanes $(LANES) $(if $(RUNTIME_WEIGHTS),--runtime-weights $(RUNTIME_WEIGHTS))

verify: $(STAMP)  ## simulate hw/build/<name> against the golden model on the test split
	$(BIN)/qsnn verify build/$(NAME) --images all

BOARD ?= icebreaker
bitstream: $(STAMP)  ## bitstream of hw/build/<name> for BOARD (icebreaker, ulx3s, orangecrab) at CLOCK MHz
	$(BIN)/qsnn bitstream hw/build/$(NAME) --board $(BOARD) $(if $(CLOCK),--clock-mhz $(CLOCK))

test: $(STAMP)  ## run the test suite: tests/ (no simulator) and sim/ (cocotb + Verilator)
	$(BIN)/python -m pytest tests sim -n $(JOBS) -q

test-gate: $(STAMP)  ## gate-level tests: digits netlists on iCE40 and ECP5, Verilator and Icarus, run-time weights in block RAM and SPRAM (10 CPU min)
	$(BIN)/python -m pytest sim/test_gate_level.py -m gate -q

lint: $(STAMP)  ## ruff over every file, then the pre-commit hooks (.pre-commit-config.yaml: ruff, mypy)
	$(BIN)/ruff check .
	$(BIN)/pre-commit run --all-files

install-check:  ## fresh venv, plain pip install ., the flow from an empty folder (~2-4 min)
	PYTHON=$(PYTHON) .ci/install-check

bench: $(STAMP)  ## benchmarks: print ratios, write bench/out/*.json
	$(BIN)/python bench/train_speed.py
	$(BIN)/python bench/golden_speed.py
	$(BIN)/python bench/sim_speed.py

# apt_install PKG: install the Debian package PKG; apt-get update only when the install alone
# fails (an update can fail where the package index is already there). make data and
# make icarus use it, and .ci/run calls them (one way of installing each).
define apt_install
SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
$$SUDO apt-get install -y -qq $(1) \
|| { $$SUDO apt-get update -qq || echo "warning: apt-get update failed; trying the install anyway"; \
     $$SUDO apt-get install -y -qq $(1); }
endef

data:  ## install Fashion-MNIST (Debian package dataset-fashion-mnist): install first, apt-get update only if not found
	@if [ -f $(FASHION_MNIST_DIR)/train-images-idx3-ubyte.gz ]; then \
	  echo "Fashion-MNIST already in $(FASHION_MNIST_DIR)"; \
	else \
	  $(call apt_install,dataset-fashion-mnist); \
	fi

icarus:  ## install Icarus Verilog (Debian package iverilog), the second simulator of pytest sim/
	@if command -v iverilog >/dev/null && command -v vvp >/dev/null; then \
	  echo "Icarus Verilog already installed: $$(iverilog -V 2>&1 | head -1)"; \
	else \
	  $(call apt_install,iverilog); \
	fi

clean:  ## remove generated outputs (keeps .venv)
	rm -rf runs build hw/build bench/out sim_build
