"""`alexnet-export`: a trained run -> a SavedModel that classifies encoded images.

    alexnet-export runs/paper_imagenet/2026-11-28 exported/alexnet          # best checkpoint
    alexnet-export RUN_DIR OUT_DIR --checkpoint latest --crops 10

The serving signature takes a batch of encoded JPEG (or PNG) bytes and does the
run's own evaluation preprocessing inside the graph (serving/export.py has it).
"""

import argparse
import os
import sys

# TensorFlow's C++ info and warning lines drown the output; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from alexnet_dist.serving.export import export  # noqa: E402
from alexnet_dist.training.run_dir import RunError  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="alexnet-export", description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", help="an alexnet-train run directory")
    p.add_argument("out_dir", help="where to write the SavedModel (must not exist)")
    p.add_argument(
        "--checkpoint", default="best", help="best (default), latest, or a checkpoint path"
    )
    p.add_argument(
        "--crops", type=int, choices=(1, 10), default=1,
        help="1: centre crop (default); 10: the paper's 10 crops, softmax averaged",
    )  # fmt: skip
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        path = export(args.run_dir, args.out_dir, args.checkpoint, args.crops)
    except (RunError, FileExistsError) as e:
        print(f"alexnet-export: error: {e}", file=sys.stderr)
        return 1
    print(f"exported {path} ({args.crops} crop(s)) to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
