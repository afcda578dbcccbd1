#!/usr/bin/env bash
# horovodrun wrapper: every rank runs alexnet-train with distribute=horovod in one run dir.
#
#   launch/horovod.sh -np 4 -H host1:2,host2:2 [--run-dir DIR] -- [hydra overrides...]
#   launch/horovod.sh -np 2 -H localhost:2 --gloo -- debug=tiny
#   ALEXNET_HOSTS_FILE=hosts.txt launch/horovod.sh --gloo -np 4 --min-np 2 --max-np 4 \
#     --host-discovery-script launch/discover_hosts.sh --blacklist-cooldown-range 10 100 \
#     -- distribute.elastic=true      # elastic: ranks may leave and join (README)
#
# Arguments before `--` go to horovodrun (add --gloo where there is no MPI);
# --run-dir pins the shared run directory (default: a new one under runs/horovod),
# so running the same command with the same --run-dir resumes. Needs `make horovod`.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${VENV_BIN:-$repo/.venv/bin}
run_dir=runs/horovod/$(date +%Y-%m-%d_%H-%M-%S)
hvd_args=()
while [[ $# -gt 0 && $1 != -- ]]; do
  if [[ $1 == --run-dir ]]; then
    run_dir=${2:?--run-dir needs a directory}
    shift 2
  else
    hvd_args+=("$1")
    shift
  fi
done
[[ ${1:-} == -- ]] && shift
if [[ ! -x $bin/horovodrun ]]; then
  echo "launch/horovod.sh: $bin/horovodrun not found; run 'make horovod' first" >&2
  exit 2
fi
run_dir=$(mkdir -p "$run_dir" && cd "$run_dir" && pwd)
# Every rank's run directory, through the environment (horovodrun passes it on, quoted,
# to remote hosts too): Hydra does not parse it as an override (conf/config.yaml).
export ALEXNET_RUN_DIR=$run_dir
exec "$bin/horovodrun" "${hvd_args[@]}" \
  "$bin/python" -m alexnet_dist.cli.train distribute=horovod "$@"
