#!/usr/bin/env bash
# A real Slurm on this one machine, for trying the sbatch scripts and for the tests:
# munged, slurmctld and two slurmd daemons that emulate the nodes node1 and node2.
#
#   tools/slurm_cluster.sh start     # installs Debian's slurm and munge if missing (root)
#   export SLURM_CONF=/tmp/alexnet-slurm.XXXXXX/slurm.conf   # what `start` prints
#   sbatch --wait slurm/train.sbatch debug=tiny ...
#   tools/slurm_cluster.sh status
#   tools/slurm_cluster.sh stop
#
# Everything lives in one private directory: the config, the munge key and socket,
# state, spool folders and the daemons' logs. `start` makes a fresh one (mktemp -d;
# mode 711: munged's socket must be reachable, its files are 600 or 400) and notes
# where in ~/.cache/alexnet_dist/slurm-test-dir for `status` and
# `stop`; SLURM_TEST_DIR names one instead. Whoever can write that directory can
# forge munge credentials and run jobs as root on this cluster, so a directory that
# is a symlink, that another user owns or that others may open is refused, and
# munged is never forced onto a key this script did not make. (munged also wants
# every folder above its socket passable by all: not under a folder of mode 700.)
# node1 and node2 resolve
# to 127.0.0.1 through /etc/hosts (added once). Each node has this machine's CPUs and
# its own slurmd port. A requeued job may start again after cred_expire (5 s here;
# 120 s is Slurm's default).
set -euo pipefail
umask 077
record=${XDG_CACHE_HOME:-$HOME/.cache}/alexnet_dist/slurm-test-dir
nodes=(node1 node2)
ctld_port=${SLURM_TEST_PORT:-6917}
[[ $ctld_port =~ ^[0-9]+$ ]] || { echo "slurm_cluster: SLURM_TEST_PORT=$ctld_port is not a number" >&2; exit 2; }
cpus=$(nproc)

die() { echo "slurm_cluster: $*" >&2; exit 2; }

# Refuses a state directory that is not this user's alone.
check_private() {
  local d=$1 mode owner
  [[ -L $d ]] && die "$d is a symlink; refusing it as the state directory"
  [[ -d $d ]] || die "$d is not a directory"
  owner=$(stat -c %u -- "$d")
  [[ $owner == "$(id -u)" ]] || die "$d belongs to uid $owner, not to you; refusing it"
  mode=$(stat -c %a -- "$d")
  (( (8#$mode & 8#066) == 0 )) ||
    die "$d is open to others (mode $mode); chmod 711 it, or leave SLURM_TEST_DIR unset"
  # Others may pass through it (munged's socket must be reachable), not list or write it.
  chmod 711 -- "$d"
}

# The state directory: SLURM_TEST_DIR, made here if missing; or the one `start` made.
state_dir() {
  if [[ -n ${SLURM_TEST_DIR:-} ]]; then
    [[ -e $SLURM_TEST_DIR || -L $SLURM_TEST_DIR ]] || mkdir -m 711 -- "$SLURM_TEST_DIR"
    dir=$SLURM_TEST_DIR
  elif [[ -f $record ]]; then
    dir=$(cat "$record")
  elif [[ $1 == start ]]; then
    dir=$(mktemp -d "${TMPDIR:-/tmp}/alexnet-slurm.XXXXXX")
    mkdir -p "$(dirname "$record")"
    echo "$dir" >"$record"
  else
    die "no test cluster was started (nothing in $record); run: $0 start"
  fi
  check_private "$dir"
  check_key
  conf=$dir/slurm.conf
}

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

# Only a key this script made: a regular file of this user's, in the private directory.
check_key() {
  local key=$dir/munge.key
  [[ -e $key || -L $key ]] || return 0
  [[ -f $key && ! -L $key && $(stat -c %u -- "$key") == "$(id -u)" ]] ||
    die "$key is not a key this script made; refusing to start munged with it"
}

start_munge() {
  local key=$dir/munge.key
  [[ -f $key ]] || dd if=/dev/urandom of="$key" bs=1024 count=1 status=none
  chmod 0400 "$key"
  if [[ -f $dir/munged.pid ]] && kill -0 "$(cat "$dir/munged.pid")" 2>/dev/null; then return; fi
  munged --key-file="$key" --socket="$dir/munge.socket" \
    --pid-file="$dir/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge.seed"
}

running() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
  install
  hosts_entries
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
  # The directory the next `start` makes is a fresh one.
  [[ -f $record && $(cat "$record") == "$dir" ]] && rm -f "$record"
  echo "slurm_cluster: stopped ($dir is left for its logs)"
}

case ${1:-} in
  start) state_dir start; start ;;
  stop) state_dir stop; stop ;;
  status) state_dir status; SLURM_CONF=$conf sinfo && SLURM_CONF=$conf squeue ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
