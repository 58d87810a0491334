# One command each; the first use creates .venv and installs the pinned dependencies.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# opt-in index for torch's build, e.g. https://download.pytorch.org/whl/cpu on a CPU-only Linux box
# (PyPI's Linux torch is the CUDA build); unset, pip only asks its configured index
TORCH_INDEX ?=
# pyproject.toml's torch requirement (a range, e.g. torch>=2.11)
TORCH_REQ = $(shell sed -nE 's/^ *"(torch[<>=!~][^"]*)",?$$/\1/p' pyproject.toml)
# make lock: the resolver, in a venv of its own (it needs a newer pip than the project's venv)
LOCK_VENV := build/lock-venv
PIP_TOOLS := pip-tools==7.7.0
LOCK_EXTRAS := dev,parallel,slurm
SCALE   ?= auto
SEEDS   ?=
JOBS    ?= 1
RESTORE ?=
LAUNCHER ?=
ARGS    ?=

.PHONY: help venv lock test test-fast lint format reproduce-ptb reproduce-mnist reproduce-gnmt analyze-ptb analyze-mnist analyze-gnmt findings check-results plan-ptb plan-mnist plan-gnmt bench bench-sweep config-docs clean-runs

help:
	@echo "make help            this list (make with no target shows it too)"
	@echo "make venv            create .venv and install the pinned dependencies (the other targets do it first;"
	@echo "                     VENV=path: another env, its torch kept if in range; TORCH_INDEX=url: torch's index)"
	@echo "make test            run the whole test suite"
	@echo "make test-fast       skip the slower end-to-end tests"
	@echo "make lint            ruff check + ruff format --check"
	@echo "make format          ruff format + ruff check --fix"
	@echo "make reproduce-ptb   PTB batch-size sweep + table + plots (SCALE=smoke|cpu|paper, default: paper on CUDA, else cpu)"
	@echo "make reproduce-mnist MNIST batch-size sweep + table + plots (SCALE=smoke|cpu|paper)"
	@echo "make reproduce-gnmt  GNMT-lite (Multi30k, BLEU) batch-size sweep + table + plots (SCALE=smoke|cpu|paper)"
	@echo "                     JOBS=2 runs side by side, RESTORE=1 restores the committed runs first,"
	@echo "                     LAUNCHER=slurm_gpu etc. (configs/hydra/launcher/), SEEDS=0,1;"
	@echo "                     FUSE=8 trains the runs of one batch size as fused groups of up to 8;"
	@echo "                     runs in \$$LEGW_RUNS_DIR (default runs/), tables and figures in"
	@echo "                     reproduced/<task>/<scale>; ends comparing with results/"
	@echo "make plan-ptb        the runs, steps each and estimated wall time (calibrated here); trains nothing"
	@echo "make plan-mnist      the same for MNIST"
	@echo "make plan-gnmt       the same for GNMT-lite"
	@echo "make analyze-ptb     tables + figures again from the committed records in results/ptb/cpu/records,"
	@echo "                     written to reproduced/ptb/<scale> (ARGS=--out=results/ptb/cpu rewrites the committed ones)"
	@echo "make analyze-mnist   the same for MNIST (results/mnist/cpu/records and its variants)"
	@echo "make analyze-gnmt    the same for GNMT-lite (SCALE=paper: the results/gnmt/paper-* grids)"
	@echo "make findings        results/FINDINGS.md + the README summary: each claim decided (docs/verdicts.md)"
	@echo "make check-results   every committed table and figure made again from its records, compared byte for byte"
	@echo "                     (ARGS=--write refreshes the committed ones; about 1 min)"
	@echo "make bench           trainer vs a bare loop per task and batch: items/s, step time, memory,"
	@echo "                     FLOP/s (results/bench/<device>-<task>.csv; ARGS='--tasks ptb --device cuda')"
	@echo "make bench-sweep     the sweep's rate: 1, 2, 4 PTB runs at once, separate and fused (items/s, %peak)"
	@echo "make config-docs     docs/config.md again from the key declarations and configs/ (ARGS=--check: is it current?)"
	@echo "make lock            regenerate requirements.lock from pyproject.toml (pip-compile)"
	@echo "make noise-mnist     gradient noise scale B_simple by epoch of the base run (results/mnist/noise)"
	@echo "make noise-ptb       the same for PTB (hours on a CPU: not committed)"
	@echo "make noise-gnmt      the same for GNMT-lite (hours on a CPU: not committed)"
	@echo "make clean-runs      delete the run directories outputs/, multirun/ and runs/ (not \$$LEGW_RUNS_DIR)"

venv: $(STAMP)

# torch first: one the env already has is kept when it satisfies pyproject.toml's range (a CUDA
# build, a venv made with --system-site-packages, VENV=your env) and an out-of-range one is left
# alone with an error; only an env without torch gets the lock's. (The range check is pip's, offline
# and without any pip configuration: it succeeds only if the installed torch satisfies it.) The
# rest of the lock is then installed with that torch held as a constraint, and the project itself
# without dependencies, built by the lock's hatchling (no build isolation: nothing fetched).
$(STAMP): pyproject.toml requirements.lock
	$(if $(TORCH_REQ),,$(error pyproject.toml: no "torch..." requirement line found))
	test -d $(VENV) || $(PY) -m venv $(VENV)
	@if have=$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null); then \
	  if PIP_CONFIG_FILE=/dev/null $(BIN)/python -m pip install --isolated --no-index --no-deps --dry-run --quiet '$(TORCH_REQ)' >/dev/null 2>&1; then \
	    echo "make venv: keeping torch $$have (satisfies $(TORCH_REQ))"; \
	  else \
	    echo "make venv: $(VENV) holds torch $$have, outside $(TORCH_REQ) (pyproject.toml); upgrade it yourself, or use another VENV" >&2; \
	    exit 2; \
	  fi; \
	else \
	  pin=$$(grep -E '^torch==' requirements.lock); \
	  echo "make venv: installing $$pin$(if $(TORCH_INDEX), (extra index $(TORCH_INDEX)))"; \
	  $(BIN)/pip install --quiet -c requirements.lock $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) "$$pin"; \
	fi
	grep -vE '^torch==' requirements.lock > $(VENV)/requirements-without-torch.txt
	$(BIN)/python -c 'import importlib.metadata as m; print("torch==" + m.version("torch"))' > $(VENV)/torch-installed.txt
	$(BIN)/pip install --quiet -r $(VENV)/requirements-without-torch.txt -c $(VENV)/torch-installed.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# requirements.lock: pyproject.toml's dependencies, its extras $(LOCK_EXTRAS) and its build
# requirements, resolved by pip-compile; pins already in the lock are kept (ARGS=--upgrade moves
# them). torch's local label (+cpu) is dropped: it names one index's build, PyPI has none, and
# the plain pin accepts the CPU and the CUDA build of that release alike. The lock is torch's CPU
# closure: a resolved CUDA build (nvidia-*, triton) is refused; use TORCH_INDEX for the CPU one.
lock:
	test -d $(LOCK_VENV) || $(PY) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet "$(PIP_TOOLS)"
	CUSTOM_COMPILE_COMMAND="make lock  (pip-compile of $(PIP_TOOLS), the Makefile says how)" $(LOCK_VENV)/bin/pip-compile --quiet \
	  --extra $(LOCK_EXTRAS) --all-build-deps --allow-unsafe --strip-extras \
	  --no-emit-index-url --no-emit-find-links \
	  $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) $(ARGS) \
	  --output-file requirements.lock pyproject.toml
	sed -i -E -e 's/^(torch==[^+ ]+)\+[A-Za-z0-9.]+/\1/' \
	  -e 's/^# The following packages are considered to be unsafe in a requirements file:$$/# setuptools, pinned too (--allow-unsafe): torch needs setuptools>=77, a new venv has 65/' \
	  requirements.lock
	@if grep -nE '^(nvidia-|triton)' requirements.lock; then \
	  echo "make lock: resolved torch's CUDA build (above); run make lock TORCH_INDEX=https://download.pytorch.org/whl/cpu" >&2; \
	  exit 1; \
	fi

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
# then tables, figures and the comparison with the committed results (reproduced/<task>/<scale>)
reproduce-ptb reproduce-mnist reproduce-gnmt: reproduce-%: $(STAMP)
	$(BIN)/python scripts/reproduce.py --task $* --scale $(SCALE) --jobs $(JOBS) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(RESTORE),--restore) $(if $(LAUNCHER),--launcher $(LAUNCHER)) $(if $(FUSE),--fuse $(FUSE)) $(ARGS)

# what a sweep would cost here: runs, steps, wall time from a calibration; writes no run
plan-ptb plan-mnist plan-gnmt: plan-%: $(STAMP)
	$(BIN)/python scripts/reproduce.py --task $* --scale $(SCALE) --jobs $(JOBS) $(if $(SEEDS),--seeds $(SEEDS)) --dry-run $(ARGS)

# regenerate tables and figures from the committed (thinned) run records, into
# reproduced/<task>/<scale> (ARGS=--out=results/<task>/<scale> rewrites the committed ones)
# (a static pattern rule: make skips implicit-rule search for .PHONY targets)
analyze-ptb analyze-mnist analyze-gnmt: analyze-%: $(STAMP)
	$(BIN)/python scripts/reproduce.py --task $* --scale $(SCALE) --analyze-only $(ARGS)
	$(BIN)/python -m legw_repro.analysis.findings

# results/FINDINGS.md and the README's summary: each claim decided per grid (docs/verdicts.md)
findings: $(STAMP)
	$(BIN)/python -m legw_repro.analysis.findings

# every committed table and figure regenerated from the committed records into a scratch
# directory and compared byte for byte (legw_repro/analysis/regenerate.py)
check-results: $(STAMP)
	$(BIN)/python -m legw_repro.analysis.regenerate $(ARGS)

# the gradient noise scale B_simple at every epoch of the task's base run (replayed with a
# checkpoint per epoch in runs/noise/), into results/<task>-noise/; MNIST: ~6 min on one core
.PHONY: noise-ptb noise-mnist noise-gnmt
noise-ptb noise-mnist noise-gnmt: noise-%: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m legw_repro.noise.cli --task $* $(ARGS)

# the trainer against a bare PyTorch loop, alternated in blocks (scripts/bench.py --help)
bench: $(STAMP)
	$(BIN)/python scripts/bench.py $(ARGS)

# the sweep's rate: N PTB batch-20 runs at once, as separate processes and as one fused group,
# in items/s of the whole sweep and % of the matmul roofline (results/bench/<device>-ptb-concurrent.csv);
# on a GPU: ARGS="--device cuda --concurrent 1,4,8,16 --sharing time-slice,mps,fused"
bench-sweep: $(STAMP)
	$(BIN)/python scripts/bench.py --tasks ptb --batches 20 --concurrent 1,2,4 --sharing time-slice,fused $(ARGS)

# the config reference: every key's declaration (legw_repro/config/keys.py, tasks/<task>/keys.py)
# and its defaults as the configs compose, per task x scale
config-docs: $(STAMP)
	$(BIN)/python -m legw_repro.config.reference $(ARGS)

clean-runs:
	rm -rf outputs multirun runs
