#!/usr/bin/env bash
# A tf.data service on this machine: one dispatcher and N workers that run the
# training input pipeline for trainers elsewhere, or for one command here.
#
#   launch/data_service.sh [-n WORKERS] [-p PORT] [-w WORK_DIR]
#   alexnet-train data.service=grpc://$(hostname):5050 ...   # on the trainers
#
#   launch/data_service.sh [-n WORKERS] [-p PORT] [-s] -- COMMAND...
#   launch/data_service.sh -n 2 -- launch/train.sh data.service=grpc://localhost:5050 ...
#
# With a COMMAND, the service and the command run in a network namespace of their own
# with loopback alone (as root; -s: in this machine's network), the command ends the
# job, and its exit code is this script's. Nothing else, here or elsewhere, can reach
# the service's servers, which run the graphs they are sent (docs/security.md).
# Without one, the service listens on every interface: keep it behind the site's
# firewall.
#
# With -w the dispatcher journals its state (jobs, workers) in WORK_DIR and a
# restarted dispatcher picks it up. Runs until interrupted (Ctrl-C or SIGTERM stops every process it started). On
# a cluster, start the dispatcher once and workers on each CPU node with
#   python -m alexnet_dist.cli.data_service worker --dispatcher HOST:PORT --host $(hostname)
# Workers read the same data paths as the trainers, so the records must be on a
# filesystem they all see.
set -euo pipefail
workers=2
port=5050
work_dir=()
share=()
while getopts "n:p:w:sh" opt; do
  case $opt in
    n) workers=$OPTARG ;;
    p) port=$OPTARG ;;
    w) work_dir=(--work-dir "$OPTARG") ;;
    s) share=(--share-network) ;;
    *) echo "usage: $0 [-n WORKERS] [-p PORT] [-w WORK_DIR] [-s] [-- COMMAND...]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
# Numbers are checked as numbers before any arithmetic: bash evaluates a variable in
# $((...)) as an expression, and an expression can run commands.
if [[ ! $workers =~ ^[0-9]{1,3}$ ]] || ((10#$workers < 1)); then
  echo "$0: -n takes a number of workers (1-999), got '$workers'" >&2
  exit 2
fi
if [[ ! $port =~ ^[0-9]{1,5}$ ]] || ((10#$port < 1 || 10#$port + 10#$workers > 65535)); then
  echo "$0: -p takes a port (1-$((65535 - 10#$workers))), got '$port'" >&2
  exit 2
fi
workers=$((10#$workers))
port=$((10#$port))
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
[[ -x $python ]] || python=python3
if (($# > 0)); then
  exec "$python" -m alexnet_dist.cli.data_service run -n "$workers" --port "$port" \
    "${work_dir[@]}" "${share[@]}" -- "$@"
fi

pids=()
stop() {
  trap - INT TERM EXIT
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

# --die-with-parent: if this script is killed outright (SIGKILL), its trap cannot run;
# the kernel then stops the dispatcher and workers instead of leaving them to PID 1.
"$python" -m alexnet_dist.cli.data_service dispatcher --port "$port" "${work_dir[@]}" \
  --die-with-parent &
pids+=($!)
for ((i = 1; i <= workers; i++)); do
  "$python" -m alexnet_dist.cli.data_service worker --dispatcher "localhost:$port" \
    --port $((port + i)) --host "$(hostname)" --die-with-parent &
  pids+=($!)
done
echo "tf.data service: dispatcher grpc://$(hostname):$port, $workers worker(s); Ctrl-C stops" >&2
# Exit (stopping the others) as soon as any of them does.
wait -n "${pids[@]}"
