# Two entry points: `make demo` and `make test`. Each creates .venv and installs what it needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Idle OpenMP threads sleep instead of spinning: much faster when other processes share the cores.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: demo test test-core bench bench-quick install clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[all]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/lingvis demo --out runs/demo

test: $(STAMP)
	bash scripts/test_deps.sh
	$(BIN)/python -m pytest -q --timeout=900

# the core dependencies alone (no extras): import, a tiny pretrain and generate (CI runs it)
test-core:
	PY=$(PY) bash scripts/core_smoke.sh

# every side-by-side comparison (about 6 minutes on an idle 2-core machine), under OpenMP's default wait
# policy, as users run: PASSIVE (kept for tests and the demo) slows small ops on both sides and skews ratios
bench: $(STAMP)
	env -u OMP_WAIT_POLICY $(BIN)/python -m benchmarks.run --out results

# the same comparisons with shorter generations and fewer repeats (about 2 minutes)
bench-quick: $(STAMP)
	env -u OMP_WAIT_POLICY $(BIN)/python -m benchmarks.run --quick --out results

clean:
	rm -rf $(VENV) .venv-core runs results
