"""N MultiWorkerMirroredStrategy workers on this machine (launch/multiworker.sh runs this).

    python -m alexnet_dist.cli.multiworker -n 2 --run-dir runs/mw -- trainer.epochs=5

Every worker gets the same pinned run directory and a TF_CONFIG with free
localhost ports, in a network namespace with loopback alone where root allows it;
if any worker fails, the others are stopped and this exits with
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
    parser.add_argument(
        "--share-network", action="store_true",
        help="run the workers in this machine's network, not in a namespace of their own "
        "with loopback alone (which needs root): to reach a tf.data service or download a "
        "dataset; their TensorFlow servers then listen on every interface",
    )  # fmt: skip
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every worker")
    args = parser.parse_args(argv)
    if args.num_workers < 1:
        parser.error(f"--num-workers must be >= 1, got {args.num_workers}")
    return launch(args.num_workers, os.path.abspath(args.run_dir), args.overrides,
                  share_network=args.share_network)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
