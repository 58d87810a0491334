#!/usr/bin/env bash
# The README's SLURM behaviour, checked on a real cluster (scripts/slurm_local.sh start builds one
# on this machine): a PTB smoke run launched with hydra/launcher=slurm_cpu is
#   1. preempted the way SLURM does by default, a SIGTERM to the running job
#      (scancel --signal=TERM): it must requeue itself, resume and finish, the sweep exiting 0,
#      with final weights equal to an uninterrupted run's (bit for bit);
#   2. cancelled (scancel): it must NOT come back; the sweep ends non-zero with one line;
#   3. relaunched while its requeued job still holds the run: the relaunch must exit 73, never 0;
#   4. requeued by an operator (scontrol requeue): it must come back, resume and finish, the
#      sweep exiting 0, with final weights equal to an uninterrupted run's.
# Takes about 8 minutes (SLURM holds a requeued job ~2 minutes before it may start again).
# Usage: scripts/slurm_check.sh [WORKDIR]   (PARTITION=debug, PYTHON=.venv/bin/python,
#        CASES=term,cancel,relaunch,requeue: the checks to run, all by default)
set -uo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d /tmp/legw-slurm.XXXXXX)}
py=${PYTHON:-.venv/bin/python}
part=${PARTITION:-debug}
export WANDB_MODE=disabled LEGW_DATA_DIR=${LEGW_DATA_DIR:-$(cd ../shared/data 2>/dev/null && pwd)}
command -v sbatch >/dev/null || { echo "slurm_check: no sbatch; scripts/slurm_local.sh start" >&2; exit 2; }

run_args=(+experiment=ptb_smoke batch_size=20 policy=sqrt_legw task.max_train_tokens=1000000
    task.max_eval_tokens=2000 epochs=1 progress=false checkpoint_every_steps=50)
slurm=(hydra/launcher=slurm_cpu "hydra.launcher.partition=$part" hydra.launcher.cpus_per_task=1
    hydra.launcher.mem_gb=2 hydra.launcher.timeout_min=30)
cases=",${CASES:-term,cancel,relaunch,requeue},"
fail=0
want() { [[ $cases == *",$1,"* ]]; }
say() { echo "slurm_check: $*"; }
check() { if eval "$2"; then say "ok   $1"; else say "FAIL $1"; fail=1; fi; }
run_dir() { echo "$1/ptb/smoke/sqrt_legw/b20-s0"; }
job_of() { squeue -h -o %i -n train | head -1; }
wait_steps() {  # until the run has logged $2 steps
    for _ in $(seq 240); do
        n=$(grep -c '"kind": "train"' "$(run_dir "$1")/metrics.jsonl" 2>/dev/null)
        [ "${n:-0}" -ge "$2" ] && return 0
        sleep 1
    done
    return 1
}
status() { "$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["status"])' "$(run_dir "$1")/summary.json" 2>/dev/null; }
sweep() {  # sweep ROOT LOG: in the background, its exit status in LOG.rc
    (LEGW_RUNS_DIR=$1 "$py" -m legw_repro.train -m "${run_args[@]}" "${slurm[@]}" >"$2" 2>&1; echo $? >"$2.rc") &
}

same_weights() {  # the run under $1 ended with the reference's weights, bit for bit
    "$py" - "$(run_dir "$work/ref")" "$(run_dir "$1")" <<EOF
import sys, torch
a, b = (torch.load(f"{d}/checkpoints/last.pt", weights_only=False)["model"] for d in sys.argv[1:])
sys.exit(0 if a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a) else 1)
EOF
}

mkdir -p "$work"
say "work dir $work"
# the reference: the same run, uninterrupted, on this machine
LEGW_RUNS_DIR="$work/ref" "$py" -m legw_repro.train "${run_args[@]}" \
    "hydra.run.dir=$(run_dir "$work/ref")" >"$work/ref.log" 2>&1
check "reference run completed" '[ "$(status "$work/ref")" = completed ]'

# 1. SIGTERM to the running job: requeued by itself, resumed, finished, equal to the reference
if want term; then
sweep "$work/term" "$work/term.log"
wait_steps "$work/term" 100
job=$(job_of)
scancel --signal=TERM "$job"
say "sent SIGTERM to job $job; waiting for its requeue and the sweep (SLURM holds it ~2 min)"
for _ in $(seq 600); do [ -f "$work/term.log.rc" ] && break; sleep 1; done
check "SIGTERM: the sweep exited 0 after the requeue" '[ "$(cat "$work/term.log.rc" 2>/dev/null)" = 0 ]'
check "SIGTERM: the run completed" '[ "$(status "$work/term")" = completed ]'
check "SIGTERM: the job was requeued by the run" 'grep -q "requeueing it" "$(run_dir "$work/term")/train.log"'
check "SIGTERM: final weights equal the uninterrupted run" 'same_weights "$work/term"'
fi

# 2. scancel: cancelled means stop, no requeue
if want cancel; then
sweep "$work/cancel" "$work/cancel.log"
wait_steps "$work/cancel" 100
scancel "$(job_of)"
for _ in $(seq 120); do [ -f "$work/cancel.log.rc" ] && break; sleep 1; done
check "scancel: the sweep exited non-zero" '[ "$(cat "$work/cancel.log.rc" 2>/dev/null)" != 0 ]'
check "scancel: no job left queued" '[ -z "$(job_of)" ]'
fi

# 3. a relaunch while the requeued job is running the point again: 73, never 0
if want relaunch; then
sweep "$work/relaunch" "$work/relaunch.log"
wait_steps "$work/relaunch" 100
scancel --signal=TERM "$(job_of)"
sleep 5
# SLURM holds a requeued job about two minutes; wait until it runs the point again
for _ in $(seq 400); do squeue -h -t R -n train | grep -q . && break; sleep 1; done
check "relaunch: the requeued job runs again" 'squeue -h -t R -n train | grep -q .'
sleep 10  # it takes the run's lock as it starts
LEGW_RUNS_DIR="$work/relaunch" timeout 600 "$py" -m legw_repro.train -m "${run_args[@]}" \
    hydra/launcher=basic >"$work/relaunch2.log" 2>&1
rc=$?
check "relaunch during a requeue: exit 73 naming the run (got $rc)" \
    '[ $rc = 73 ] && grep -q "not finished by this sweep" "$work/relaunch2.log"'
for _ in $(seq 1500); do [ -f "$work/relaunch.log.rc" ] && break; sleep 1; done
check "relaunch during a requeue: the requeued job still finished" '[ "$(status "$work/relaunch")" = completed ]'
fi

# 4. scontrol requeue: SLURM requeues the job itself; the run checkpoints, resumes and finishes
if want requeue; then
sweep "$work/requeue" "$work/requeue.log"
wait_steps "$work/requeue" 100
job=$(job_of)
scontrol requeue "$job"
say "scontrol requeue $job; waiting for the requeued job and the sweep (SLURM holds it ~2 min)"
for _ in $(seq 900); do [ -f "$work/requeue.log.rc" ] && break; sleep 1; done
check "scontrol requeue: the sweep exited 0 (got $(cat "$work/requeue.log.rc" 2>/dev/null))" \
    '[ "$(cat "$work/requeue.log.rc" 2>/dev/null)" = 0 ]'
check "scontrol requeue: the run completed" '[ "$(status "$work/requeue")" = completed ]'
check "scontrol requeue: it resumed from a checkpoint" \
    'grep -q resumed_from "$(run_dir "$work/requeue")/summary.json"'
check "scontrol requeue: final weights equal the uninterrupted run" 'same_weights "$work/requeue"'
fi

say "$([ $fail = 0 ] && echo "all checks passed" || echo "some checks FAILED"); logs in $work"
exit $fail
