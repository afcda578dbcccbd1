"""`alexnet-eval`: top-1 and top-5 error of a run or an exported model, as the paper reports.

    alexnet-eval RUN_DIR                          # best checkpoint, centre and 10-crop
    alexnet-eval RUN_DIR --checkpoint latest --crops 10 --data-dir /data/records
    alexnet-eval --saved-model exported/alexnet --data-dir /data/records

Every image of the split counts once (no dropped remainder).
"""

import argparse
import dataclasses
import json
import os
import sys

# TensorFlow's C++ info and warning lines drown the output; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from alexnet_dist import runs  # noqa: E402
from alexnet_dist.config import DistributeConfig  # noqa: E402
from alexnet_dist.data import schema, sources  # noqa: E402
from alexnet_dist.data.pipeline import list_shards  # noqa: E402
from alexnet_dist.distribute import create_runtime  # noqa: E402
from alexnet_dist.training.step import make_eval_step  # noqa: E402
from alexnet_dist.training.summaries import Meter  # noqa: E402


def evaluate_checkpoint(
    run_dir: str, checkpoint: str, data_dir: str | None, split: str | None, crops: int, batch: int
) -> dict:
    """{"loss", "top1", "top5", "count"} of a run's checkpoint on a split of records."""
    cfg = runs.load_config(run_dir)
    labels = runs.read_labels(run_dir)
    source = sources.Records(data_dir) if data_dir else sources.create(cfg.data)
    if source.labels != labels:
        raise runs.RunError(
            f"the classes of {source.description} ({len(source.labels)}) differ from the "
            f"run's labels.txt ({len(labels)}): this is not the run's dataset"
        )
    model = runs.load_model(cfg, checkpoint, len(labels))
    split = split or cfg.data.val_split
    spec = dataclasses.replace(
        sources.input_spec(cfg, training=False, batch_size=batch), split=split, eval_crops=crops
    )
    eval_step = make_eval_step(model, create_runtime(DistributeConfig()), sources.model_input(cfg))
    meter = Meter()
    with source.reading(split):
        for images_labels in source.dataset(spec):
            meter.add(eval_step(images_labels))
    return {**meter.result(), "count": int(meter.sums.get("count", 0))}


def evaluate_saved_model(saved_model: str, data_dir: str, split: str, batch: int) -> dict:
    """{"top1", "top5", "count"} of an alexnet-export SavedModel on a split of records.

    The SavedModel decodes and crops the records' JPEG bytes itself, as in serving.
    """
    serve = tf.saved_model.load(saved_model).signatures["serving_default"]
    ds = tf.data.TFRecordDataset(list_shards(data_dir, split)).map(schema.parse).batch(batch)
    hits1 = hits5 = count = 0
    for features in ds:
        probabilities = serve(image_bytes=features["image/encoded"])["probabilities"]
        labels = tf.cast(features["image/class/label"], tf.int32)
        k = min(5, probabilities.shape[-1])
        hits1 += int(tf.reduce_sum(tf.cast(tf.math.in_top_k(labels, probabilities, 1), tf.int32)))
        hits5 += int(tf.reduce_sum(tf.cast(tf.math.in_top_k(labels, probabilities, k), tf.int32)))
        count += int(labels.shape[0])
    return {"top1": hits1 / max(count, 1), "top5": hits5 / max(count, 1), "count": count}


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
            runs.load_config(args.run_dir)  # is it a run at all?
            path = runs.find_checkpoint(args.run_dir, args.checkpoint)
            rows = [
                (path, crops, evaluate_checkpoint(
                    args.run_dir, path, args.data_dir, args.split, crops, args.batch_size))
                for crops in args.crops
            ]  # fmt: skip
    except (runs.RunError, schema.DataError, FileNotFoundError) as e:
        print(f"alexnet-eval: error: {e}", file=sys.stderr)
        return 1
    print(table(rows))
    if args.json:
        print(json.dumps([{"model": n, "crops": c, **m} for n, c, m in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
