"""N MultiWorkerMirroredStrategy workers on this machine (launch/multiworker.sh runs this).

    python -m alexnet_dist.cli.multiworker -n 2 --run-dir runs/mw -- trainer.epochs=5

Every worker gets the same pinned run directory and a TF_CONFIG with free
localhost ports; if any worker fails, the others are stopped and this exits with
the failing worker's exit code (distribute/launcher.py).
"""

import argparse
import os
import sys
import time

from alexnet_dist.distribute.launcher import launch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="launch/multiworker.sh", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("-n", "--num-workers", type=int, default=2)
    parser.add_argument(
        "--run-dir",
        default=os.path.join("runs", "multiworker", time.strftime("%Y-%m-%d_%H-%M-%S")),
        help="run directory shared by all workers (default: a new one under runs/multiworker)",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every worker")
    args = parser.parse_args(argv)
    if args.num_workers < 1:
        parser.error(f"--num-workers must be >= 1, got {args.num_workers}")
    return launch(args.num_workers, os.path.abspath(args.run_dir), args.overrides)


if __name__ == "__main__":
    sys.exit(main())
