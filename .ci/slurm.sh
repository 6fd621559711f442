#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for CI and for trying profiles/slurm locally.
#
#   bash .ci/slurm.sh              # the smoke workflow through profiles/slurm (tests/test_slurm_profile.py)
#   bash .ci/slurm.sh CMD ARGS...  # any command while the cluster is up (e.g. sinfo, an interactive shell)
#
# Self-contained and idempotent: installs Debian's slurm-wlm and munge when missing (apt-get
# update first; needs root), installs the pinned executor plugin into the venv when missing,
# writes /etc/slurm/slurm.conf (the job-step plugin drops SLURM_CONF, so the config must be in the
# default place; an existing slurm.conf that this script did not write is never overwritten),
# starts munged, slurmctld and slurmd, waits for the node to be idle, runs the command, and on any
# exit cancels the jobs, stops each daemon it started by its PID and removes its slurm.conf.
#
# The node advertises this machine's cores, a memory size large enough for the profile's requests
# and 2 GPUs as a countable resource without devices: the profile's GPU requests (--gpus=1) and
# memory requests are submitted unchanged and scheduled, while the smoke config runs on the CPU.
# Memory is not a consumable and is not enforced (task/none), so nothing is killed for it.
#
# Environment: PYTHON (default .venv/bin/python), LAYERKD_SLURM_STATE (default /tmp/layerkd-slurm),
# LAYERKD_SLURM_TIMEOUT (seconds for the whole command, default 1800).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-$ROOT/.venv/bin/python}
STATE=${LAYERKD_SLURM_STATE:-/tmp/layerkd-slurm}
TIMEOUT=${LAYERKD_SLURM_TIMEOUT:-1800}
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
MARK="# written by layerkd .ci/slurm.sh (single-node CI cluster)"
PLUGIN_PIN="snakemake-executor-plugin-slurm==2.8.0"
NODE=$(hostname -s)
CPUS=$(nproc)
GPUS=2          # gres.conf below lists one stand-in device file per GPU
MEM_MB=262144   # advertised only (SlurmdParameters=config_overrides); not a consumable
MUNGED_PIDFILE=/run/munge/layerkd-munged.pid   # munged runs as user munge: its own directory

log() { printf '[slurm.sh] %s\n' "$*" >&2; }
[ -x "$PY" ] || { log "no Python at $PY: create the venv (make install) or set PYTHON"; exit 1; }

# --- install -----------------------------------------------------------------------------------
need_apt=()
command -v slurmctld >/dev/null 2>&1 || need_apt+=(slurm-wlm)
command -v munged >/dev/null 2>&1 || need_apt+=(munge)
if ((${#need_apt[@]})); then
    [ "$(id -u)" = 0 ] || { log "need root to install ${need_apt[*]}"; exit 1; }
    log "installing ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        slurm-wlm munge >/dev/null
fi
plugin_version=$("$PY" -m pip show snakemake-executor-plugin-slurm 2>/dev/null | sed -n 's/^Version: //p')
if [ "$plugin_version" != "${PLUGIN_PIN##*==}" ]; then
    log "installing $PLUGIN_PIN into $("$PY" -c 'import sys; print(sys.prefix)')"
    "$PY" -m pip install --quiet "$PLUGIN_PIN"
fi

# --- configuration -----------------------------------------------------------------------------
if [ -e "$CONF" ] && ! grep -qxF "$MARK" "$CONF"; then
    log "$CONF exists and was not written by this script: refusing to replace it"
    exit 1
fi
mkdir -p "$CONF_DIR" "$STATE"
# stop what a previous, killed run of this script left behind (our PID files only)
for f in "$STATE"/slurmd.pid "$STATE"/slurmctld.pid "$MUNGED_PIDFILE"; do
    if [ -s "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then
        log "stopping leftover $(basename "$f" .pid) (PID $(cat "$f"))"
        kill "$(cat "$f")" 2>/dev/null || true
        sleep 1
    fi
    rm -f "$f"
done
rm -rf "$STATE/ctld" "$STATE/spool"
mkdir -p "$STATE/ctld" "$STATE/spool"

cat >"$CONF" <<EOF
$MARK
ClusterName=layerkd
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
GresTypes=gpu
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
MinJobAge=3600
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB Gres=gpu:$GPUS State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
cat >"$CONF_DIR/gres.conf" <<EOF
$MARK
AutoDetect=off
NodeName=$NODE Name=gpu File=/dev/null
NodeName=$NODE Name=gpu File=/dev/zero
EOF

# --- start -------------------------------------------------------------------------------------
MUNGED_PID="" CTLD_PID="" SLURMD_PID=""
stop_pid() {  # name pid
    [ -n "$2" ] || return 0
    if kill -0 "$2" 2>/dev/null; then
        kill "$2" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$2" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$2" 2>/dev/null; then kill -9 "$2" 2>/dev/null || true; fi
        log "stopped $1 (PID $2)"
    fi
}
cleanup() {
    local rc=$?
    if [ -n "$CTLD_PID" ] && kill -0 "$CTLD_PID" 2>/dev/null; then
        ids=$(squeue -h -o %i 2>/dev/null || true)
        if [ -n "$ids" ]; then log "cancelling jobs $ids"; scancel $ids 2>/dev/null || true; sleep 2; fi
    fi
    stop_pid slurmd "$SLURMD_PID"
    stop_pid slurmctld "$CTLD_PID"
    stop_pid munged "$MUNGED_PID"
    rm -f "$STATE"/slurmd.pid "$STATE"/slurmctld.pid "$MUNGED_PIDFILE"
    # remove our configuration: with a slurm.conf but no controller, every SLURM client call
    # (the executor plugin runs `scontrol show config` when imported, i.e. in every snakemake
    # call) waits ~10 s for the controller before failing
    for f in "$CONF" "$CONF_DIR/gres.conf"; do
        if [ -f "$f" ] && grep -qxF "$MARK" "$f"; then rm -f "$f"; fi
    done
    if [ "$rc" != 0 ]; then
        for f in "$STATE"/slurmctld.log "$STATE"/slurmd.log; do
            [ -f "$f" ] && { log "tail of $f:"; tail -n 25 "$f" >&2; }
        done
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "munged already running: using it"
else
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge /etc/munge
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
    fi
    rm -f "$MUNGED_PIDFILE"
    runuser -u munge -- /usr/sbin/munged --pid-file="$MUNGED_PIDFILE"
    for _ in $(seq 50); do [ -s "$MUNGED_PIDFILE" ] && break; sleep 0.1; done
    MUNGED_PID=$(cat "$MUNGED_PIDFILE")
    log "munged started (PID $MUNGED_PID)"
fi

/usr/sbin/slurmctld -D -c -f "$CONF" >>"$STATE/slurmctld.out" 2>&1 &
CTLD_PID=$!
log "slurmctld started (PID $CTLD_PID)"
/usr/sbin/slurmd -D -f "$CONF" >>"$STATE/slurmd.out" 2>&1 &
SLURMD_PID=$!
log "slurmd started (PID $SLURMD_PID)"

state=""
for _ in $(seq 120); do
    state=$(sinfo -h -n "$NODE" -o %T 2>/dev/null || true)
    [ "$state" = idle ] && break
    kill -0 "$CTLD_PID" 2>/dev/null || { log "slurmctld exited"; exit 1; }
    kill -0 "$SLURMD_PID" 2>/dev/null || { log "slurmd exited"; exit 1; }
    sleep 0.5
done
[ "$state" = idle ] || { log "node $NODE is '$state', not idle, after 60 s"; exit 1; }
log "node $NODE idle: $(sinfo -h -N -o '%N %c CPUs, %m MB, %G')"

# --- run ---------------------------------------------------------------------------------------
if (($#)); then
    cmd=("$@")
else
    cmd=("$PY" -m pytest -p no:cacheprovider -ra tests/test_slurm_profile.py)
fi
export LAYERKD_SLURM_CLUSTER=1   # tests/test_slurm_profile.py: fail (not skip) without SLURM
export HF_HUB_OFFLINE=1
log "running: ${cmd[*]} (timeout ${TIMEOUT}s)"
start=$(date +%s)
set +e
timeout --kill-after=30 "$TIMEOUT" "${cmd[@]}"
rc=$?
set -e
log "command exited $rc after $(($(date +%s) - start)) s"
exit "$rc"
