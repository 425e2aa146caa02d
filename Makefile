# twin — two commands: `make run` and `make test` set everything up themselves.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install run test test-quick bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

run: install
	$(PY) run_sim.py

test: install
	$(PY) -m pytest -q

test-quick: install
	$(PY) -m pytest -q -m "not slow"

bench: install
	$(PY) benchmarks/bench_native.py

clean:
	rm -rf results .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
