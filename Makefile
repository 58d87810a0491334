# One command each; the first use creates .venv and installs the pinned dependencies.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
SCALE   ?= auto
SEEDS   ?=
JOBS    ?= 1
RESTORE ?=
LAUNCHER ?=
ARGS    ?=

.PHONY: help venv test test-fast lint format reproduce-ptb reproduce-mnist reproduce-gnmt analyze-ptb analyze-mnist analyze-gnmt plan-ptb plan-mnist plan-gnmt bench clean-runs

help:
	@echo "make help            this list (make with no target shows it too)"
	@echo "make venv            create .venv and install the pinned dependencies (the other targets do it first)"
	@echo "make test            run the whole test suite"
	@echo "make test-fast       skip the slower end-to-end tests"
	@echo "make lint            ruff check + ruff format --check"
	@echo "make format          ruff format + ruff check --fix"
	@echo "make reproduce-ptb   PTB batch-size sweep + table + plots (SCALE=smoke|cpu|paper, default: paper on CUDA, else cpu)"
	@echo "make reproduce-mnist MNIST batch-size sweep + table + plots (SCALE=smoke|cpu|paper)"
	@echo "make reproduce-gnmt  GNMT-lite (Multi30k, BLEU) batch-size sweep + table + plots (SCALE=smoke|cpu|paper)"
	@echo "                     JOBS=2 runs side by side, RESTORE=1 restores the committed runs first,"
	@echo "                     LAUNCHER=slurm_gpu etc. (configs/hydra/launcher/), SEEDS=0,1;"
	@echo "                     runs in \$$LEGW_RUNS_DIR (default runs/), tables and figures in"
	@echo "                     reproduced/<scale>/<task>; ends comparing with results/"
	@echo "make plan-ptb        the runs, steps each and estimated wall time (calibrated here); trains nothing"
	@echo "make plan-mnist      the same for MNIST"
	@echo "make plan-gnmt       the same for GNMT-lite"
	@echo "make analyze-ptb     tables + figures again from the committed records in results/ptb/records,"
	@echo "                     written to reproduced/<scale>/ptb (ARGS=--out=results/ptb rewrites the committed ones)"
	@echo "make analyze-mnist   the same for MNIST (results/mnist/records and its variants)"
	@echo "make analyze-gnmt    the same for GNMT-lite (SCALE=paper: the results/paper/gnmt-* grids)"
	@echo "make bench           trainer vs a bare loop per task and batch: items/s, step time, memory,"
	@echo "                     FLOP/s (results/bench/<device>-<task>.csv; ARGS='--tasks ptb --device cuda')"
	@echo "make clean-runs      delete the run directories outputs/, multirun/ and runs/ (not \$$LEGW_RUNS_DIR)"

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

# train the sweep (a Hydra multirun of configs/experiment/<task>_<scale>.yaml and its variants),
# then tables, figures and the comparison with the committed results (reproduced/<scale>/<task>)
reproduce-ptb reproduce-mnist reproduce-gnmt: reproduce-%: $(STAMP)
	$(BIN)/python scripts/reproduce.py --task $* --scale $(SCALE) --jobs $(JOBS) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(RESTORE),--restore) $(if $(LAUNCHER),--launcher $(LAUNCHER)) $(ARGS)

# what a sweep would cost here: runs, steps, wall time from a calibration; writes no run
plan-ptb plan-mnist plan-gnmt: plan-%: $(STAMP)
	$(BIN)/python scripts/reproduce.py --task $* --scale $(SCALE) --jobs $(JOBS) $(if $(SEEDS),--seeds $(SEEDS)) --dry-run $(ARGS)

# regenerate tables and figures from the committed (thinned) run records, into
# reproduced/<scale>/<task> (ARGS=--out=results/<task> rewrites the committed ones)
# (a static pattern rule: make skips implicit-rule search for .PHONY targets)
analyze-ptb analyze-mnist analyze-gnmt: analyze-%: $(STAMP)
	$(BIN)/python scripts/reproduce.py --task $* --scale $(SCALE) --analyze-only $(ARGS)

# the trainer against a bare PyTorch loop, alternated in blocks (scripts/bench.py --help)
bench: $(STAMP)
	$(BIN)/python scripts/bench.py $(ARGS)

clean-runs:
	rm -rf outputs multirun runs
