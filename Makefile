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
	@echo "make test            run the whole test suite (creates .venv on first use)"
	@echo "make test-fast       skip the slower end-to-end tests"
	@echo "make reproduce-ptb   PTB batch-size sweep + table + plots (SCALE=smoke|cpu|paper, default: paper on CUDA, else cpu)"
	@echo "make reproduce-mnist MNIST batch-size sweep + table + plots (SCALE=smoke|cpu|paper)"
	@echo "make reproduce-gnmt  GNMT-lite (Multi30k, BLEU) batch-size sweep + table + plots (SCALE=smoke|cpu|paper)"
	@echo "                     JOBS=2 runs side by side, RESTORE=1 restores the committed runs first,"
	@echo "                     LAUNCHER=slurm_gpu etc. (configs/hydra/launcher/); ends comparing with results/"
	@echo "make plan-ptb        the runs, steps each and estimated wall time (calibrated here); trains nothing"
	@echo "make analyze-ptb     tables + figures again from the committed records in results/ptb/records"
	@echo "make bench           trainer vs a bare loop per task and batch: items/s, step time, memory,"
	@echo "                     FLOP/s (results/bench/<device>-<task>.csv; ARGS='--tasks ptb --device cuda')"
	@echo "make noise-mnist     gradient noise scale B_simple by epoch of the base run (results/mnist-noise)"
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

# train the sweep (a Hydra multirun of configs/experiment/<task>_<scale>.yaml and its variants),
# then tables, figures and the comparison with the committed results (reproduced/<scale>/<task>)
reproduce-ptb reproduce-mnist reproduce-gnmt: reproduce-%: $(STAMP)
	$(BIN)/python scripts/reproduce.py --task $* --scale $(SCALE) --jobs $(JOBS) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(RESTORE),--restore) $(if $(LAUNCHER),--launcher $(LAUNCHER)) $(ARGS)

# what a sweep would cost here: runs, steps, wall time from a calibration; writes no run
plan-ptb plan-mnist plan-gnmt: plan-%: $(STAMP)
	$(BIN)/python scripts/reproduce.py --task $* --scale $(SCALE) --jobs $(JOBS) $(if $(SEEDS),--seeds $(SEEDS)) --dry-run $(ARGS)

# regenerate tables and figures from the committed (thinned) run records
# (a static pattern rule: make skips implicit-rule search for .PHONY targets)
analyze-ptb analyze-mnist analyze-gnmt: analyze-%: $(STAMP)
	$(BIN)/python scripts/reproduce.py --task $* --scale $(SCALE) --analyze-only

# the gradient noise scale B_simple at every epoch of the task's base run (replayed with a
# checkpoint per epoch in runs/noise/), into results/<task>-noise/; MNIST: ~6 min on one core
.PHONY: noise-ptb noise-mnist noise-gnmt
noise-ptb noise-mnist noise-gnmt: noise-%: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m legw_repro.noise_cli --task $* $(ARGS)

# the trainer against a bare PyTorch loop, alternated in blocks (scripts/bench.py --help)
bench: $(STAMP)
	$(BIN)/python scripts/bench.py $(ARGS)

clean-runs:
	rm -rf outputs multirun runs
