#!/usr/bin/env bash
# Install (from Debian's packages) and start a single-node SLURM on this machine:
# munged, slurmctld and slurmd, one partition "debug" with all cores (at least 4).
# Idempotent: what is installed or running already is left as it is.
# Prints "slurm ready" and exits 0 once `sinfo` shows the node idle.
set -euo pipefail

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "start-slurm: SLURM is not installed and installing it needs root" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

HOST=$(hostname -s)
# The tests run several one-core worker jobs at once. On a machine that shows fewer than
# 4 CPUs to this process (a small VM, a CI runner pinned to one core) the node still
# offers 4, so those jobs share the cores instead of waiting for each other forever;
# config_overrides makes slurmd accept a count above the hardware's.
CPUS=$(( $(nproc) > 4 ? $(nproc) : 4 ))
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 8 / 10 ))
CONF_DIR=/etc/slurm
mkdir -p "$CONF_DIR" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge /var/lib/munge /var/log/munge

if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 700 /etc/munge && chmod 400 /etc/munge/munge.key
pgrep -x munged >/dev/null || su -s /bin/sh munge -c "munged --force" || munged --force

cat > "$CONF_DIR/slurm.conf" <<CONF
ClusterName=daskgmm
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
SlurmdParameters=config_overrides
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
# Debian's packages read /etc/slurm; older ones /etc/slurm-llnl.
[ -d /etc/slurm-llnl ] && cp "$CONF_DIR/slurm.conf" /etc/slurm-llnl/slurm.conf

# A cold start clears the saved job state (-c): jobs of an earlier run, kept in
# /var/spool/slurmctld by a machine image, would otherwise come back pending.
pgrep -x slurmctld >/dev/null || slurmctld -c
pgrep -x slurmd >/dev/null || slurmd

for _ in $(seq 60); do
  if sinfo -h -o "%t" 2>/dev/null | grep -Eq "^(idle|mix|alloc)"; then
    echo "slurm ready: $(sinfo -h -o '%P %D %t %c CPUs')"
    exit 0
  fi
  scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
  sleep 1
done
echo "start-slurm: the node did not become ready; slurmctld and slurmd logs follow" >&2
tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
exit 1
