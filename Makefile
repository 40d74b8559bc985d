# Two commands on a fresh machine: `make demo` and `make test`. Each creates the virtualenv it needs in .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.neuromorph-installed
REQUIREMENTS := requirements/base.txt requirements/lava.txt requirements/test.txt requirements/test-nodeps.txt pyproject.toml

.PHONY: venv demo test lint clean

venv: $(STAMP)

# lava-nc 0.10.0 and lava-dl 0.6.0 declare Python < 3.11 and pin torch < 2.4, so they are installed without their
# declared dependencies; their real runtime needs are in requirements/base.txt, and neuromorph/lava_compat.py makes
# them import on Python 3.11; its startup file (install-pth) makes Lava import as it is in this environment.
$(STAMP): $(REQUIREMENTS) neuromorph/lava_compat.py neuromorph/csrc/neurons.cpp
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements/base.txt -r requirements/test.txt
	$(BIN)/python -m pip install --quiet --no-deps --ignore-requires-python -r requirements/lava.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements/test-nodeps.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m neuromorph.lava_compat install-pth
	$(BIN)/python -m neuromorph.neurons build
	touch $(STAMP)

demo: venv
	$(BIN)/python examples/demo.py --out runs/demo

# the PostgreSQL server that tests/neuromorph/test_sweep.py starts (installed with apt-get where it is missing)
test: venv
	sh .ci/ensure-postgresql
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check neuromorph hw_models export examples tests

clean:
	rm -rf $(VENV) runs
