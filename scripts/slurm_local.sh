#!/usr/bin/env bash
# A single-node SLURM cluster on this (Debian) machine, to run the SLURM paths for real before a
# release: munge, slurmctld and slurmd on localhost, one partition `debug` with this machine's
# CPUs, no accounting, no cgroups (works in a container). Needs root and the packages:
#   apt-get install -y slurm-wlm munge          (Debian 12: SLURM 22.05)
# Then: scripts/slurm_local.sh start | stop | status; scripts/slurm_check.sh runs the checks.
# No accounting (slurmdbd): sacct fails, so the LEGW sweeper reads job states from squeue
# (legw_repro/sweep/slurm_watch.py); a job that left the queue without a result ends the sweep
# with one line and exit 75, as on clusters with sacct.
set -euo pipefail

conf=/etc/slurm/slurm.conf
spool=/var/spool/slurm-legw
host=$(hostname -s)
cpus=$(nproc)
mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)

need() { command -v "$1" >/dev/null || { echo "slurm_local: $1 not found; apt-get install -y slurm-wlm munge" >&2; exit 2; }; }

start() {
    need slurmctld; need slurmd; need munged
    [ "$(id -u)" = 0 ] || { echo "slurm_local: run as root" >&2; exit 2; }
    mkdir -p /etc/slurm "$spool/ctld" "$spool/d" /var/log/slurm /run/munge /var/lib/munge /var/log/munge
    if [ ! -s /etc/munge/munge.key ]; then
        mkdir -p /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
    chmod 400 /etc/munge/munge.key
    pgrep -x munged >/dev/null || runuser -u munge -- munged || munged --force
    cat > "$conf" <<EOF
ClusterName=legw
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$spool/ctld
SlurmdSpoolDir=$spool/d
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
KillWait=30
JobRequeue=1
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    pgrep -x slurmctld >/dev/null || slurmctld
    pgrep -x slurmd >/dev/null || slurmd
    for _ in $(seq 30); do
        sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)' && break
        sleep 1
    done
    scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
    sinfo
}

stop() {
    pkill -x slurmd || true
    pkill -x slurmctld || true
    echo "slurm_local: stopped slurmd and slurmctld (munged left running)"
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    status) sinfo && squeue ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
