#!/usr/bin/env bash
# A real Slurm on this one machine, for trying the sbatch scripts and for the tests:
# munged, slurmctld and two slurmd daemons that emulate the nodes node1 and node2.
#
#   tools/slurm_cluster.sh start     # installs Debian's slurm and munge if missing (root)
#   export SLURM_CONF=/tmp/alexnet-slurm/slurm.conf   # what `start` prints
#   sbatch --wait slurm/train.sbatch debug=tiny ...
#   tools/slurm_cluster.sh status
#   tools/slurm_cluster.sh stop
#
# Everything lives in SLURM_TEST_DIR (default /tmp/alexnet-slurm): the config, the
# munge key and socket, state, spool folders and the daemons' logs. node1 and node2
# resolve to 127.0.0.1 through /etc/hosts (added once). Each node has this
# machine's CPUs and its own slurmd port. A requeued job may start again after
# cred_expire (5 s here; 120 s is Slurm's default).
set -euo pipefail
dir=${SLURM_TEST_DIR:-/tmp/alexnet-slurm}
conf=$dir/slurm.conf
nodes=(node1 node2)
ctld_port=${SLURM_TEST_PORT:-6917}
cpus=$(nproc)

installed() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null &&
    command -v sbatch >/dev/null && command -v munged >/dev/null &&
    ldconfig -p | grep -q 'libpmix\.so\.2'
}

install() {
  installed && return
  # libpmix2: what srun --mpi=pmix loads to start MPI ranks (slurm/horovod.sbatch).
  echo "slurm_cluster: installing slurmctld, slurmd, slurm-client, munge and libpmix2 (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge \
    libpmix2 >/dev/null
}

write_config() {
  mkdir -p "$dir/state" "$dir/log"
  {
    echo "ClusterName=alexnet-test"
    echo "SlurmctldHost=localhost"
    echo "SlurmctldPort=$ctld_port"
    echo "SlurmUser=root"
    echo "SlurmdUser=root"
    echo "AuthType=auth/munge"
    echo "CredType=cred/munge"
    echo "AuthInfo=socket=$dir/munge.socket,cred_expire=5"
    echo "StateSaveLocation=$dir/state"
    echo "SlurmdSpoolDir=$dir/spool/%n"
    echo "SlurmctldPidFile=$dir/slurmctld.pid"
    echo "SlurmdPidFile=$dir/slurmd-%n.pid"
    echo "SlurmctldLogFile=$dir/log/slurmctld.log"
    echo "SlurmdLogFile=$dir/log/slurmd-%n.log"
    echo "SlurmdParameters=config_overrides"
    echo "ProctrackType=proctrack/linuxproc"
    echo "TaskPlugin=task/none"
    echo "JobAcctGatherType=jobacct_gather/none"
    echo "SelectType=select/cons_tres"
    echo "SelectTypeParameters=CR_CPU"
    echo "MpiDefault=none"
    echo "ReturnToService=2"
    echo "MinJobAge=5"
    echo "KillWait=10"
    echo "SchedulerParameters=batch_sched_delay=0"
    local port=$((ctld_port + 1))
    for node in "${nodes[@]}"; do
      echo "NodeName=$node NodeAddr=127.0.0.1 Port=$port CPUs=$cpus State=UNKNOWN"
      port=$((port + 1))
    done
    echo "PartitionName=debug Nodes=$(IFS=,; echo "${nodes[*]}") Default=YES MaxTime=INFINITE State=UP"
  } >"$conf"
}

hosts_entries() {
  for node in "${nodes[@]}"; do
    grep -qE "^[^#]*[[:space:]]$node([[:space:]]|$)" /etc/hosts || echo "127.0.0.1 $node" >>/etc/hosts
  done
}

start_munge() {
  [[ -f $dir/munge.key ]] || { dd if=/dev/urandom of="$dir/munge.key" bs=1024 count=1 status=none; }
  chmod 0400 "$dir/munge.key"
  if [[ -f $dir/munged.pid ]] && kill -0 "$(cat "$dir/munged.pid")" 2>/dev/null; then return; fi
  munged --force --key-file="$dir/munge.key" --socket="$dir/munge.socket" \
    --pid-file="$dir/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge.seed"
}

running() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
  install
  hosts_entries
  mkdir -p "$dir"
  write_config
  start_munge
  export SLURM_CONF=$conf
  running "$dir/slurmctld.pid" || slurmctld -f "$conf"
  for node in "${nodes[@]}"; do
    # Each node gets its own TmpFS, where srun --mpi=pmix puts a step's PMIx
    # folder: two nodes on one host would otherwise create the same one.
    mkdir -p "$dir/spool/$node" "$dir/tmp/$node"
    { cat "$conf"; echo "TmpFS=$dir/tmp/$node"; } >"$dir/slurm-$node.conf"
    running "$dir/slurmd-$node.pid" || slurmd -f "$dir/slurm-$node.conf" -N "$node"
  done
  for _ in $(seq 100); do
    if [[ $(sinfo -h -o '%t' 2>/dev/null | sort -u) == idle ]]; then
      echo "slurm_cluster: ${nodes[*]} up; use it with: export SLURM_CONF=$conf"
      return
    fi
    sleep 0.2
  done
  echo "slurm_cluster: the nodes did not come up; logs in $dir/log" >&2
  sinfo >&2 || true
  exit 1
}

stop() {
  for pid_file in "$dir"/slurmd-*.pid "$dir/slurmctld.pid" "$dir/munged.pid"; do
    [[ -f $pid_file ]] || continue
    pid=$(cat "$pid_file")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pid_file"
  done
  echo "slurm_cluster: stopped"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) SLURM_CONF=$conf sinfo && SLURM_CONF=$conf squeue ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
