# One command each; the first use creates .venv and installs the pinned dependencies.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
SCALE   ?= auto
SEEDS   ?=
JOBS    ?= 1
ARGS    ?=

.PHONY: help venv test test-fast lint format reproduce-ptb reproduce-mnist reproduce-gnmt analyze-ptb analyze-mnist analyze-gnmt clean-runs

help:
	@echo "make test            run the whole test suite (creates .venv on first use)"
	@echo "make test-fast       skip the slower end-to-end tests"
	@echo "make reproduce-ptb   PTB batch-size sweep + table + plots (SCALE=smoke|cpu|paper, default: paper on CUDA, else cpu)"
	@echo "make reproduce-mnist MNIST batch-size sweep + table + plots (SCALE=smoke|cpu|paper)"
	@echo "make reproduce-gnmt  GNMT-lite (Multi30k, BLEU) batch-size sweep + table + plots (SCALE=smoke|cpu|paper)"
	@echo "make analyze-ptb     tables + figures again from the committed records in results/ptb/records"
	@echo "make lint / format   ruff"

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

reproduce-ptb: $(STAMP)
	$(BIN)/python scripts/reproduce.py --task ptb --scale $(SCALE) --jobs $(JOBS) $(if $(SEEDS),--seeds $(SEEDS)) $(ARGS)

reproduce-mnist: $(STAMP)
	$(BIN)/python scripts/reproduce.py --task mnist --scale $(SCALE) --jobs $(JOBS) $(if $(SEEDS),--seeds $(SEEDS)) $(ARGS)

reproduce-gnmt: $(STAMP)
	$(BIN)/python scripts/reproduce.py --task gnmt --scale $(SCALE) --jobs $(JOBS) $(if $(SEEDS),--seeds $(SEEDS)) $(ARGS)

# regenerate tables and figures from the committed (thinned) run records
# (a static pattern rule: make skips implicit-rule search for .PHONY targets)
analyze-ptb analyze-mnist analyze-gnmt: analyze-%: $(STAMP)
	$(BIN)/python scripts/reproduce.py --task $* --scale $(SCALE) --analyze-only

clean-runs:
	rm -rf outputs multirun runs
