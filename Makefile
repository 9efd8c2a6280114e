# Two commands set up a fresh machine and do everything:
#   make repro   - create .venv from pyproject.toml, then `dvc repro` the whole paper (embedded default)
#   make test    - create .venv from pyproject.toml, then run the test suite
VENV   := .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: repro test test-fast lint lab install

install: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	# torch==2.13.0 is pinned in pyproject.toml: the CPU build, never a multi-GB CUDA one
	$(PYTHON) -m pip install --quiet -e '.[dev,lab,onnx]'
	touch $(STAMP)

repro: $(STAMP)
	dvc repro

test: $(STAMP)
	$(PYTHON) -m pytest -q

test-fast: $(STAMP)
	$(PYTHON) -m pytest -q -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

# `make lab ARGS="--port 8899 --no-browser"` passes flags on to jupyter lab (in a container,
# add --ip 0.0.0.0 to reach it from outside). As root (containers run as root) --allow-root is
# added: jupyter refuses to start as root without it.
ARGS ?=
LAB_ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/ $(LAB_ROOT_FLAG) $(ARGS)
