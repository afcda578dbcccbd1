#!/usr/bin/env bash
# One training process in a named run directory: run it again and it resumes.
#
#   launch/train.sh RUN_DIR [hydra overrides...]
#   launch/train.sh runs/my-run debug=tiny
#
# Pinning the run directory is what makes resume and requeue work: Hydra's default
# directory is a new timestamp per process. It goes through ALEXNET_RUN_DIR
# (conf/config.yaml), which Hydra does not parse as an override: commas and quotes
# stay part of the path ('${' is refused: Hydra would resolve it where it copies it).
# Uses the repo's .venv if there is one.
set -euo pipefail
if [[ $# -lt 1 || $1 == -* ]]; then
  echo "usage: $0 RUN_DIR [hydra overrides...]" >&2
  exit 2
fi
run_dir=$1
shift
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
[[ -x $python ]] || python=python3
ALEXNET_RUN_DIR=$run_dir exec "$python" -m alexnet_dist.cli.train "$@"
