"""`alexnet-eval`: top-1 and top-5 error of a run or an exported model, as the paper reports.

    alexnet-eval RUN_DIR                          # best checkpoint, centre and 10-crop
    alexnet-eval RUN_DIR --checkpoint latest --crops 10 --data-dir /data/records
    alexnet-eval --saved-model exported/alexnet --data-dir /data/records

Every image of the split counts once (no dropped remainder).
"""

import argparse
import json
import os
import sys

# TensorFlow's C++ info and warning lines drown the output; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from alexnet_dist.data import schema  # noqa: E402
from alexnet_dist.training.evaluation import (  # noqa: E402
    evaluate_checkpoint,
    evaluate_saved_model,
)
from alexnet_dist.training.run_dir import RunError, find_checkpoint, load_config  # noqa: E402


def table(rows: list[tuple[str, int, dict]]) -> str:
    """The paper's format: error rates in percent."""
    lines = ["| model | crops | top-1 error | top-5 error | images |", "|---|---|---|---|---|"]
    for name, crops, m in rows:
        lines.append(
            f"| {name} | {crops} | {100 * (1 - m['top1']):.2f} % | "
            f"{100 * (1 - m['top5']):.2f} % | {m['count']} |"
        )
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="alexnet-eval", description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", nargs="?", help="an alexnet-train run directory")
    p.add_argument("--saved-model", help="evaluate a model made by alexnet-export instead")
    p.add_argument("--checkpoint", default="best", help="best (default), latest, or a path")
    p.add_argument("--data-dir", help="converted records (default: the run's own data)")
    p.add_argument("--split", help="split to evaluate (default: the run's validation split)")
    p.add_argument(
        "--crops", type=int, nargs="+", choices=(1, 10), default=[1, 10],
        help="1: centre crop; 10: the paper's 10 crops (default: both)",
    )  # fmt: skip
    p.add_argument("--batch-size", type=int, default=50, help="images per step (default: 50)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = p.parse_args(argv)
    if bool(args.run_dir) == bool(args.saved_model):
        p.error("give a run directory or --saved-model, not both")
    if args.saved_model and not args.data_dir:
        p.error("--saved-model needs --data-dir (the records to evaluate on)")
    if args.batch_size < 1:
        p.error("--batch-size must be positive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if args.saved_model:
            split = args.split or "val"
            with open(os.path.join(args.saved_model, "alexnet_export.json")) as f:
                crops = json.load(f)["crops"]
            metrics = evaluate_saved_model(args.saved_model, args.data_dir, split, args.batch_size)
            rows = [(args.saved_model, crops, metrics)]
        else:
            load_config(args.run_dir)  # is it a run at all?
            path = find_checkpoint(args.run_dir, args.checkpoint)
            rows = [
                (path, crops, evaluate_checkpoint(
                    args.run_dir, path, args.data_dir, args.split, crops, args.batch_size))
                for crops in args.crops
            ]  # fmt: skip
    except (RunError, schema.DataError, FileNotFoundError) as e:
        print(f"alexnet-eval: error: {e}", file=sys.stderr)
        return 1
    print(table(rows))
    if args.json:
        print(json.dumps([{"model": n, "crops": c, **m} for n, c, m in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
