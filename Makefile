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

# the main job: learned vs hand-made augmentation on real MNIST (mnist5k, offline), then its report
MAIN := mnist5k_pbt
run: $(STAMP)
	$(BIN)/raydaug tune $(MAIN) --storage $(CURDIR)/runs --name $(MAIN) $(if $(wildcard runs/$(MAIN)/tuner.pkl),--resume)
	$(BIN)/raydaug analyze runs/$(MAIN)
	@echo "results: $(CURDIR)/runs/$(MAIN) and runs/$(MAIN)_baselines (report: runs/$(MAIN)/report/report.html)"

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench
	$(BIN)/python -m bench.cost_model

clean:
	rm -rf runs bench/results/*.tmp .pytest_cache
