#!/usr/bin/env bash
# N MultiWorkerMirroredStrategy workers on this machine (TF_CONFIG on free ports).
#
#   launch/multiworker.sh -n 2 [--run-dir runs/mw] [-- hydra overrides...]
#   launch/multiworker.sh -n 2 -- debug=tiny
#
# Worker 0 prints the progress and writes checkpoints and TensorBoard logs; if any
# worker dies the rest are stopped and this exits with the dead worker's code.
# Running it again with the same --run-dir resumes the run.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
[[ -x $python ]] || python=python3
exec "$python" -m alexnet_dist.cli.multiworker "$@"
