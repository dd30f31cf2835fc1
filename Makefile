# Every target creates .venv (pip) when missing; re-running is cheap.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml $(wildcard */__init__.py)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/raydaug tune digits_pbt --storage $(CURDIR)/runs --name digits_pbt $(if $(wildcard runs/digits_pbt/tuner.pkl),--resume)
	$(BIN)/raydaug analyze runs/digits_pbt
	@echo "results: $(CURDIR)/runs/digits_pbt (report: runs/digits_pbt/report/report.html)"

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench
	$(BIN)/python -m bench.cost_model

clean:
	rm -rf runs bench/results/*.tmp .pytest_cache
