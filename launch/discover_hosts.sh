#!/usr/bin/env bash
# Host discovery for elastic Horovod: horovodrun --host-discovery-script runs this about
# once a second and takes the hosts it prints ("host:slots", one per line) as those that
# may run ranks now. A host that drops out of the list loses its ranks; one that appears
# gets ranks, up to --max-np.
#
#   ALEXNET_HOSTS_FILE=hosts.txt  print that file (edit it to take hosts out or in)
#   in a Slurm allocation         its nodes, SLURM_NTASKS_PER_NODE (or 1) slots each
set -euo pipefail
if [[ -n ${ALEXNET_HOSTS_FILE:-} ]]; then
  grep -v '^[[:space:]]*\(#\|$\)' "$ALEXNET_HOSTS_FILE" || true
elif [[ -n ${SLURM_JOB_NODELIST:-} ]]; then
  scontrol show hostnames "$SLURM_JOB_NODELIST" | sed "s/\$/:${SLURM_NTASKS_PER_NODE:-1}/"
else
  echo "discover_hosts.sh: set ALEXNET_HOSTS_FILE, or run inside a Slurm allocation" >&2
  exit 2
fi
