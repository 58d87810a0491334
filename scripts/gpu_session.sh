#!/usr/bin/env bash
# One GPU slot (about 15 minutes of device time), prepared and tested on a CPU first
# (../shared/GPU-NOTES.md): checks that fail in seconds, the GPU-only tests, `make bench` on CUDA
# (trainer vs bare loops, CUDA graphs at batch 20 and 1280, 1-8 runs sharing the GPU), the
# paper-scale PTB grid for seed 0, and everything packed into $OUT. Each stage runs under its own
# `timeout`; packing runs on exit whatever failed, so a stage that runs long still returns what
# finished (the grid resumes from its checkpoints when run again).
#
#   scripts/gpu_session.sh prepare [SETS...]       # here, once: .gpu/ = hydra, omegaconf, antlr4,
#                                                  # the joblib launcher, the data sets named
#                                                  # (default ptb mnist multi30k; carry ".gpu").
#                                                  # The tree and .gpu travel together, 64 MiB at
#                                                  # most: name only the sets the stages need
#   scripts/gpu_session.sh checks tests bench      # on the GPU machine, first call (~5 min)
#   scripts/gpu_session.sh grid                    # on the GPU machine, second call (~6 min)
#   scripts/gpu_session.sh sweep-rate grid         # 1, 4, 8, 16 runs side by side, time-sliced
#                                                  # and under CUDA MPS (~5 min); then the grid
#                                                  # the best way (GRID_JOBS, GRID_SHARING)
#   scripts/gpu_session.sh fused fused-grid        # 1, 4, 8, 16 PTB batch-20 runs as one fused
#                                                  # group against the same runs time-sliced
#                                                  # (~5 min); then the grid fused by batch size
#                                                  # (PTB_SEEDS, default 0,1,2; FUSE, default 16)
#   scripts/gpu_session.sh signals                 # 6 PTB paper runs side by side, CUDA graphs,
#                                                  # SIGTERM then SIGKILL 10 s later: all
#                                                  # preempted within 10 s? (~3 min)
#   scripts/gpu_session.sh checks gnmt-base        # GNMT's base recipe (gnmt_paper/base512, batch
#                                                  # 128, Adam) on seeds 2-5, 4 side by side (~5
#                                                  # min, estimated); GNMT_BASE_SWEEP: other runs
#   scripts/gpu_session.sh gnmt-grid               # gnmt_paper/base256, the committed points
#                                                  # restored, the rest trained (~5 min);
#                                                  # GNMT_GRID=base512: the task's recipe (~40
#                                                  # runs of 20 epochs: several slots, resumable)
#   GPU_SESSION_SMOKE=1 scripts/gpu_session.sh checks tests bench grid   # on a CPU: device=cpu,
#                                                  # smoke models and scale, to know it runs
#
# Out: $OUT (the device tool's folder; else ./gpu-out): session.log and results.tgz (bench CSVs,
# the grid's run records without checkpoints, its compact records and analysis).
# Env: PYTHON (default .venv/bin/python if there, else python3), GRID_JOBS (runs side by side;
# default: the best of the concurrency measurement if this machine made one, else 4),
# GPU_SESSION_WORK (default /tmp/legw-gpu-session), GPU_SESSION_DEADLINE_S (seconds this call
# may take, default 570: the device tool stops a command at 600), GNMT_BASE_SWEEP (the gnmt-base
# stage's Hydra sweep overrides, space-separated; default below), GNMT_GRID (the gnmt-grid
# stage's variant of gnmt_paper, default base256).

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
  local site sets=("$@") tree
  [ ${#sets[@]} -gt 0 ] || sets=(ptb mnist multi30k)
  site=$(echo .venv/lib/python3*/site-packages)
  rm -rf .gpu/data
  mkdir -p .gpu/site/hydra_plugins .gpu/data
  for p in hydra omegaconf antlr4 hydra_core-*.dist-info omegaconf-*.dist-info \
      antlr4_python3_runtime-*.dist-info hydra_joblib_launcher-*.dist-info; do
    cp -r "$site"/$p .gpu/site/ || return 1
  done
  cp -r "$site/hydra_plugins/hydra_joblib_launcher" .gpu/site/hydra_plugins/ || return 1
  for d in "${sets[@]}"; do
    cp -r "${LEGW_DATA_DIR:-../shared/data}/$d" .gpu/data/ || return 1
  done
  grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >>.git/info/exclude
  du -sh .gpu
  # what travels: tracked and untracked-but-not-ignored files, plus .gpu
  tree=$( { git ls-files -z --cached --others --exclude-standard; find .gpu -type f -print0; } |
    du -cb --files0-from=- | tail -1 | cut -f1)
  echo "tree + .gpu: $((tree / 1048576)) MiB of the 64 MiB the device tool carries"
  [ "$tree" -le $((64 * 1048576)) ] || { echo "too big: name fewer data sets"; return 1; }
}

# the GNMT stages' runs, one line each: test BLEU (beam) and the final validation loss
bleu_table() {
  "$PY" - "$WORK/runs" <<'EOF'
import json, pathlib, sys
for f in sorted(pathlib.Path(sys.argv[1]).glob("gnmt*/**/summary.json")):
    s = json.loads(f.read_text())
    t = {k: round(v["bleu"], 1) for k, v in (s.get("test_sets") or {}).items()}
    print(f.parent.relative_to(sys.argv[1]), s["status"], t, f"{s.get('wall_time_s', 0):.0f}s")
EOF
}

# the tuning runs, one line each (final valid / test ppl), and the rate the rule picks: the
# lowest final validation perplexity among the completed runs
adam_choice() {
  "$PY" - "$WORK/runs/ptb-adam-tune" <<'EOF'
import json, pathlib, sys
rows = []
for f in sorted(pathlib.Path(sys.argv[1]).glob("*/summary.json")):
    s = json.loads(f.read_text())
    fin = s.get("final") or {}
    rows.append((s["base_lr"], s["status"], fin.get("valid_ppl"), fin.get("test_ppl")))
    print(f.parent.name, s["status"], fin)
done = [r for r in rows if r[1] == "completed" and r[2] is not None]
if done:
    print("adam rate by final valid ppl:", min(done, key=lambda r: r[2])[0])
EOF
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
present = [d for d in ("ptb", "mnist", "multi30k") if os.path.isdir(os.path.join(data, d))]
assert present, f"no data set (ptb, mnist, multi30k) under {data}: run `prepare` here first"
print("data:", present)
EOF
  # one smoke run through the whole CLI on the device (seconds), of a task whose data came
  local task=ptb data=${LEGW_DATA_DIR:-data}
  if [ ! -d "$data/ptb" ]; then
    if [ -d "$data/multi30k" ]; then task=gnmt; else task=mnist; fi
  fi
  "$PY" -m legw_repro.train "task=$task" scale=smoke "device=$DEV" epochs=1 progress=false \
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

# how the best of that measurement shared the GPU: time-slice (plain processes) or mps
best_sharing() {
  "$PY" - "$WORK/bench/$DEV-ptb-concurrent.csv" <<'EOF' 2>/dev/null || echo time-slice
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(max(rows, key=lambda r: float(r["items_per_s"])).get("sharing") or "time-slice")
EOF
}

# CUDA MPS for the stage that follows (its pipe and log under $WORK/mps), and off again
mps_on() {
  command -v nvidia-cuda-mps-control >/dev/null || { say "mps: nvidia-cuda-mps-control not found, runs time-slice"; return 1; }
  export CUDA_MPS_PIPE_DIRECTORY=$WORK/mps/pipe CUDA_MPS_LOG_DIRECTORY=$WORK/mps/log
  mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
  nvidia-cuda-mps-control -d && say "mps: daemon started"
}
mps_off() {
  echo quit | nvidia-cuda-mps-control >/dev/null 2>&1
  unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
}

do_stage() {
  local b=(scripts/bench.py --device "$DEV" --out "$WORK/bench")
  case $1 in
    prepare) do_prepare ;;
    checks) stage checks 120 "$ROOT/scripts/gpu_session.sh" _checks ;;
    tests) stage tests 150 "$PY" -m pytest -q -x -p no:cacheprovider tests/test_cudagraph.py tests/test_throughput.py \
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
    sweep-rate)
      # N PTB batch-20 runs side by side (CUDA graphs, the default), time-sliced and under CUDA
      # MPS where its daemon exists: the whole sweep's rate; the grid stage takes the best
      if [ "$SMOKE" = 1 ]; then
        stage sweep-rate 200 "$PY" "${b[@]}" --smoke --tasks ptb --batches 8 --concurrent 1,2 \
          --sharing time-slice,mps
      else
        stage sweep-rate 330 "$PY" "${b[@]}" --tasks ptb --batches 20 --concurrent 1,4,8,16 \
          --sharing time-slice,mps --window-s 6
      fi ;;
    fused)
      # the sweep's rate when the runs of one batch size train as one stacked model, against the
      # same runs as separate processes (time-sliced, CUDA graphs): items/s and %peak per row
      if [ "$SMOKE" = 1 ]; then
        stage fused 200 "$PY" "${b[@]}" --smoke --tasks ptb --batches 8 --concurrent 1,2 \
          --sharing time-slice,fused --window-s 3
      else
        stage fused 330 "$PY" "${b[@]}" --tasks ptb --batches 20 --concurrent 1,4,8,16 \
          --sharing time-slice,fused --window-s 6 --overrides cuda_graphs=true
      fi ;;
    signals)
      # issue 28 #4: N runs side by side (CUDA graphs), SIGTERM to the sweep process only and
      # SIGKILL 10 s later, as `timeout` did on an H200: is every run preempted within 10 s?
      mkdir -p "$WORK/bench"
      if [ "$SMOKE" = 1 ]; then
        stage signals 200 "$PY" -m legw_repro.bench.signals --runs 2 --grace-s 10 \
          --out "$WORK/bench/signals.json" +experiment=ptb_smoke batch_size=20 seed=0,1 \
          policy=sqrt_legw "device=$DEV"
      else
        stage signals 300 "$PY" -m legw_repro.bench.signals --runs 6 --after-steps 20 \
          --grace-s 10 --out "$WORK/bench/signals.json" +experiment=ptb_paper \
          batch_size=20,40,80,160,320,1280 policy=sqrt_legw seed=0 device=cuda cuda_graphs=true
      fi ;;
    fused-grid)
      # the PTB grid with its runs fused by batch size (hydra.sweeper.fuse), resumable: its wall
      # time against the roofline's ~7 minutes for three seeds (issue 29)
      stage fused-grid "${GRID_S:-$([ "$SMOKE" = 1 ] && echo 400 || echo 540)}" "$PY" \
        scripts/reproduce.py --task ptb --scale "$SCALE" --seeds "${PTB_SEEDS:-0,1,2}" \
        --fuse "${FUSE:-16}" --jobs "${GRID_JOBS:-2}" --no-variants --runs-dir "$WORK/runs-fused" \
        --out "$WORK/grid-fused" ;;
    grid)
      # the PTB grid: committed points restored (results/ptb/<scale>/records), the rest trained
      # with CUDA graphs; PTB_SEEDS, PTB_POLICIES narrow it (default: seed 0, every policy);
      # GRID_SHARING=mps|time-slice (default: the best of the sweep-rate measurement, if made)
      local jobs=${GRID_JOBS:-$(best_jobs)} narrow=() mps=0
      jobs=${jobs:-4}
      if [ "${GRID_SHARING:-$(best_sharing)}" = mps ] && mps_on; then mps=1; fi
      if [ -n "${PTB_POLICIES:-}" ]; then narrow=(--policies "$PTB_POLICIES"); fi
      stage grid "${GRID_S:-$([ "$SMOKE" = 1 ] && echo 400 || echo 390)}" "$PY" \
        scripts/reproduce.py --task ptb --scale "$SCALE" --seeds "${PTB_SEEDS:-0}" "${narrow[@]}" \
        --jobs "$jobs" --no-variants --restore --runs-dir "$WORK/runs" --out "$WORK/grid" \
        "cuda_graphs=$([ "$DEV" = cuda ] && echo true || echo false)"
      if [ "$mps" = 1 ]; then mps_off; fi ;;
    ptb-adam-tune)
      # PTB's Adam rate, tuned at the base batch only (batch 20, seed 0, the full budget), as
      # the issue asks; chosen afterwards on the final validation perplexity (adam_choice)
      local rates=${PTB_ADAM_RATES:-0.0005,0.001,0.002,0.004,0.008} exp=ptb_paper
      if [ "$SMOKE" = 1 ]; then exp=ptb_smoke; fi
      stage ptb-adam-tune "${TUNE_S:-570}" "$PY" -m legw_repro.train -m "+experiment=$exp" \
        policy=adam batch_size=20 seed=0 "task.adam.base_lr=$rates" "device=$DEV" progress=false \
        "cuda_graphs=$([ "$DEV" = cuda ] && echo true || echo false)" hydra/launcher=joblib \
        "hydra.launcher.n_jobs=${TUNE_JOBS:-4}" "hydra.sweep.dir=$WORK/runs/ptb-adam-tune" \
        'hydra.sweep.subdir=adam-${task.adam.base_lr}-b${batch_size}-s${seed}'
      adam_choice | tee -a "$LOG" ;;
    gnmt-base)
      # base-recipe runs at batch 128 (results/gnmt/tuning/README.md steps 6-7: 20 epochs at dropout 0.2
      # over-fit; 512 units at dropout 0.4 reached 36.5-36.8 BLEU in session 10)
      # GNMT_BASE_SWEEP: other Hydra sweep overrides, space-separated; the run dirs name the rate,
      # epochs, vocabulary, width, dropout and seed, so any of those may be swept
      # seeds 2-5 by default: how often the recipe lands in the low mode that split the 256-unit
      # runs by seed (step 7); any width is `task.model.hidden=H task.model.embed=\${task.model.hidden}`
      local exp=gnmt_paper/base512 sweep
      read -r -a sweep <<<"${GNMT_BASE_SWEEP:-seed=2,3,4,5}"
      if [ "$SMOKE" = 1 ]; then
        exp=gnmt_smoke
        read -r -a sweep <<<"${GNMT_BASE_SWEEP:-seed=0 task.adam.base_lr=0.004,0.008 epochs=1}"
      fi
      stage gnmt-base 570 "$PY" -m legw_repro.train -m "+experiment=$exp" policy=adam \
        batch_size=128 "${sweep[@]}" "device=$DEV" progress=false hydra/launcher=joblib \
        "hydra.launcher.n_jobs=${GRID_JOBS:-8}" "hydra.sweep.dir=$WORK/runs/gnmt-base" \
        'hydra.sweep.subdir=adam-${task.adam.base_lr}-e${epochs}-v${task.subword.vocab_size}-h${task.model.hidden}-d${task.model.dropout}-s${seed}'
      bleu_table | tee -a "$LOG" ;;
    gnmt-grid)
      local grid=${GNMT_GRID:-base256}
      if [ "$SMOKE" = 1 ]; then grid=main; fi
      stage gnmt-grid 570 "$PY" scripts/reproduce.py --task gnmt --scale "$SCALE" --grids "$grid" \
        --restore --jobs "${GRID_JOBS:-8}" --runs-dir "$WORK/runs" --out "$WORK/gnmt-grid"
      bleu_table | tee -a "$LOG" ;;
    *) say "unknown stage $1 (prepare, checks, tests, bench, sweep-rate, fused, fused-grid, signals, grid, ptb-adam-tune, gnmt-base, gnmt-grid)"; return 2 ;;
  esac
}

case ${1:-} in
  prepare) shift; do_prepare "$@"; exit $? ;;
  _checks) do_checks; exit $? ;;  # a stage of its own process, so that `timeout` can run it
esac
trap pack EXIT
say "gpu_session: stages $* | device $DEV | python $PY | work $WORK | out $OUTDIR"
for s in "$@"; do
  do_stage "$s"
done
