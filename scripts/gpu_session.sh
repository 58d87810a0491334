#!/usr/bin/env bash
# One GPU slot (about 15 minutes of device time), prepared and tested on a CPU first
# (../shared/GPU-NOTES.md): checks that fail in seconds, the GPU-only tests, `make bench` on CUDA
# (trainer vs bare loops, CUDA graphs at batch 20 and 1280, 1-8 runs sharing the GPU), the
# paper-scale PTB grid for seed 0, and everything packed into $OUT. Each stage runs under its own
# `timeout`; packing runs on exit whatever failed, so a stage that runs long still returns what
# finished (the grid resumes from its checkpoints when run again).
#
#   scripts/gpu_session.sh prepare                 # here, once: .gpu/ = hydra, omegaconf, antlr4,
#                                                  # the joblib launcher, the data (carry ".gpu")
#   scripts/gpu_session.sh checks tests bench      # on the GPU machine, first call (~5 min)
#   scripts/gpu_session.sh grid                    # on the GPU machine, second call (~6 min)
#   GPU_SESSION_SMOKE=1 scripts/gpu_session.sh checks tests bench grid   # on a CPU: device=cpu,
#                                                  # smoke models and scale, to know it runs
#
# Out: $OUT (the device tool's folder; else ./gpu-out): session.log and results.tgz (bench CSVs,
# the grid's run records without checkpoints, its compact records and analysis).
# Env: PYTHON (default .venv/bin/python if there, else python3), GRID_JOBS (runs side by side;
# default: the best of the concurrency measurement if this machine made one, else 4),
# GPU_SESSION_WORK (default /tmp/legw-gpu-session), GPU_SESSION_DEADLINE_S (seconds this call
# may take, default 570: the device tool stops a command at 600).

set -u -o pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SMOKE=${GPU_SESSION_SMOKE:-0}
OUTDIR=${OUT:-$ROOT/gpu-out}
WORK=${GPU_SESSION_WORK:-/tmp/legw-gpu-session}
LOG=$OUTDIR/session.log
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON; elif [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
if [ -d .gpu/site ]; then export PYTHONPATH=$ROOT/.gpu/site:$ROOT${PYTHONPATH:+:$PYTHONPATH}; fi
if [ -d .gpu/data ]; then export LEGW_DATA_DIR=$ROOT/.gpu/data; fi
export WANDB_MODE=disabled PYTHONUNBUFFERED=1
if [ "$SMOKE" = 1 ]; then DEV=cpu; SCALE=smoke; else DEV=cuda; SCALE=paper; fi
DEADLINE=${GPU_SESSION_DEADLINE_S:-570}
mkdir -p "$OUTDIR" "$WORK"

say() { echo "=== $* [$(date -u +%H:%M:%S)]" | tee -a "$LOG"; }

# stage NAME SECONDS COMMAND...: COMMAND under a timeout (its own, cut to what is left of the
# call's DEADLINE), logged; the results are packed after every stage; the script goes on
stage() {
  local name=$1 secs=$2 t0=$SECONDS rc left
  shift 2
  left=$((DEADLINE - SECONDS - 15))
  if [ "$left" -lt "$secs" ]; then secs=$left; fi
  if [ "$secs" -lt 20 ]; then
    say "$name: skipped, ${left}s left of this call"
    return 124
  fi
  say "$name (timeout ${secs}s): $*"
  timeout --kill-after=10 "$secs" "$@" 2>&1 | tee -a "$LOG"
  rc=${PIPESTATUS[0]}
  say "$name: exit $rc after $((SECONDS - t0))s"
  pack
  return "$rc"
}

pack() {
  tar -czf "$OUTDIR/results.tgz" --exclude='*.pt' -C "$WORK" . 2>>"$LOG"
  say "packed $(du -h "$OUTDIR/results.tgz" | cut -f1) into $OUTDIR/results.tgz"
}

do_prepare() {
  local site
  site=$(echo .venv/lib/python3*/site-packages)
  mkdir -p .gpu/site/hydra_plugins .gpu/data
  for p in hydra omegaconf antlr4 hydra_core-*.dist-info omegaconf-*.dist-info \
      antlr4_python3_runtime-*.dist-info hydra_joblib_launcher-*.dist-info; do
    cp -r "$site"/$p .gpu/site/ || return 1
  done
  cp -r "$site/hydra_plugins/hydra_joblib_launcher" .gpu/site/hydra_plugins/ || return 1
  cp -r "${LEGW_DATA_DIR:-../shared/data}"/. .gpu/data/ || return 1
  grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >>.git/info/exclude
  du -sh .gpu
}

do_checks() {
  if [ "$DEV" = cuda ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || return 1
  fi
  "$PY" - "$DEV" <<'EOF' || return 1
import os, sys
import hydra, omegaconf, torch
dev = sys.argv[1]
print("python", sys.version.split()[0], "| torch", torch.__version__, "| cuda", torch.version.cuda,
      "| cudnn", torch.backends.cudnn.version(), "| hydra", hydra.__version__)
if dev == "cuda":
    assert torch.cuda.is_available(), "torch sees no GPU"
    print("device:", torch.cuda.get_device_name())
data = os.environ.get("LEGW_DATA_DIR", "data")
missing = [d for d in ("ptb", "mnist") if not os.path.isdir(os.path.join(data, d))]
assert not missing, f"no {missing} under {data}"
EOF
  # one smoke run through the whole CLI on the device (seconds)
  "$PY" -m legw_repro.train scale=smoke "device=$DEV" epochs=1 progress=false \
    "hydra.run.dir=$WORK/check-run"
}

# the best concurrency of the measurement (most items/s), if this machine made one
best_jobs() {
  "$PY" - "$WORK/bench/$DEV-ptb-concurrent.csv" <<'EOF' 2>/dev/null
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(max(rows, key=lambda r: float(r["items_per_s"]))["concurrent"])
EOF
}

do_stage() {
  local b=(scripts/bench.py --device "$DEV" --out "$WORK/bench")
  case $1 in
    prepare) do_prepare ;;
    checks) stage checks 120 "$ROOT/scripts/gpu_session.sh" _checks ;;
    tests) stage tests 150 "$PY" -m pytest -q -x -p no:cacheprovider tests/test_cudagraph.py \
      tests/test_nosync.py -k "cuda or graphed" ;;
    bench)
      if [ "$SMOKE" = 1 ]; then
        stage bench 300 "$PY" "${b[@]}" --smoke --tasks ptb,mnist
        stage bench-concurrent 200 "$PY" "${b[@]}" --smoke --tasks ptb --batches 8 --concurrent 1,2
      else
        stage bench-ptb 200 "$PY" "${b[@]}" --tasks ptb --batches 20,160,1280 \
          --graphs-batches 20,1280 --budget-s 8
        stage bench-mnist 110 "$PY" "${b[@]}" --tasks mnist --batches 128,8192 \
          --graphs-batches 128 --budget-s 8
        stage bench-concurrent 130 "$PY" "${b[@]}" --tasks ptb --batches 20 \
          --concurrent 1,2,4,8 --window-s 8
      fi ;;
    grid)
      local jobs=${GRID_JOBS:-$(best_jobs)}
      jobs=${jobs:-4}
      stage grid "$([ "$SMOKE" = 1 ] && echo 400 || echo 390)" "$PY" scripts/reproduce.py \
        --task ptb --scale "$SCALE" --seeds 0 --jobs "$jobs" --no-variants \
        --runs-dir "$WORK/runs" --out "$WORK/grid" ;;
    *) say "unknown stage $1 (prepare, checks, tests, bench, grid)"; return 2 ;;
  esac
}

case ${1:-} in
  prepare) do_prepare; exit $? ;;
  _checks) do_checks; exit $? ;;  # a stage of its own process, so that `timeout` can run it
esac
trap pack EXIT
say "gpu_session: stages $* | device $DEV | python $PY | work $WORK | out $OUTDIR"
for s in "$@"; do
  do_stage "$s"
done
