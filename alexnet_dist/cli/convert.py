"""`alexnet-convert`: image folders -> sharded TFRecords, a label map and a report.

    alexnet-convert /data/ILSVRC2012/train /data/records --split train --resize 256
    alexnet-convert /data/ILSVRC2012/val /data/records --split val --resize 256 \\
        --val-labels /data/ILSVRC2012_devkit_t12        # or LOC_val_solution.csv
    alexnet-convert /data/val-by-class /data/records --split val   # val in synset folders

Train (and validation already sorted) is one folder per class; flat validation
needs --val-labels. The second split reuses the first one's labels.txt, so labels
agree across splits. An interrupted conversion resumes when run again: shards
that are complete and verified are kept.
"""

import argparse
import logging
import os
import sys

# TensorFlow's C++ info and warning lines drown the output; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from alexnet_dist.data.converter import convert_tree
from alexnet_dist.data.image_limits import ImageLimits  # noqa: E402
from alexnet_dist.data.schema import ConversionError  # noqa: E402

DEFAULT_SHARDS = {"train": 1024, "val": 128, "validation": 128}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="alexnet-convert",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("input_dir", help="one subfolder of images per class, or a flat folder")
    p.add_argument("output_dir", help="folder for the shards, labels.txt and <split>.json")
    p.add_argument(
        "--split", default="train", help="split name used in shard names (default: train)"
    )
    p.add_argument(
        "--num-shards", type=int, default=None,
        help="number of shards (default: 1024 for train, 128 for val, 16 otherwise; "
        "never more than the images)",
    )  # fmt: skip
    p.add_argument(
        "--resize", type=int, default=None, metavar="PIXELS",
        help="scale each image's shorter side to PIXELS (the paper's 256) so training "
        "reads small records; default: keep the files as they are",
    )  # fmt: skip
    p.add_argument(
        "--val-labels", default=None, metavar="PATH",
        help="classes of a flat folder: the ILSVRC2012 devkit folder, Kaggle's "
        "LOC_val_solution.csv, or a text file of '<file> <class>' lines",
    )  # fmt: skip
    p.add_argument(
        "--workers", type=int, default=None,
        help="processes writing shards (default: one per core, fewer if the memory for "
        "decoding an image at --max-pixels in each is not available)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffle across shards")
    p.add_argument(
        "--overwrite", action="store_true", help="replace this split if the output already has it"
    )
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip files that are not decodable images (they are listed) instead of failing",
    )
    limits = ImageLimits()
    p.add_argument(
        "--max-pixels", type=int, default=limits.max_pixels, metavar="N",
        help="refuse an image whose header declares more pixels, before decoding it "
        f"(default: {limits.max_pixels:,}, data.max_image_pixels)",
    )  # fmt: skip
    p.add_argument(
        "--max-bytes", type=int, default=limits.max_bytes, metavar="N",
        help=f"refuse a file larger than this (default: {limits.max_bytes:,} bytes)",
    )  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def _num_images(args) -> int:
    if args.val_labels:
        return sum(1 for f in os.listdir(args.input_dir) if not f.startswith("."))
    return sum(len(files) for root, _, files in os.walk(args.input_dir) if root != args.input_dir)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("alexnet_dist").setLevel(logging.INFO)
    try:
        file_classes = None
        if args.val_labels:
            from alexnet_dist.data import val_labels

            file_classes = val_labels.read(args.val_labels)
        shards = args.num_shards
        if shards is None and os.path.isdir(args.input_dir):
            shards = max(1, min(DEFAULT_SHARDS.get(args.split, 16), _num_images(args)))
        report = convert_tree(
            args.input_dir,
            args.output_dir,
            args.split,
            shards or 1,
            workers=args.workers,
            overwrite=args.overwrite,
            skip_bad=args.skip_bad,
            seed=args.seed,
            resize=args.resize,
            file_classes=file_classes,
            labels_source=args.val_labels or "",
            progress=not args.no_progress and sys.stderr.isatty(),
            limits=ImageLimits(args.max_pixels, args.max_bytes),
        )
    except ConversionError as e:
        print(f"alexnet-convert: error: {e}", file=sys.stderr)
        return 2
    print(summary(report, args.output_dir))
    return 0


def summary(report: dict, output_dir: str) -> str:
    """The final report: counts, per-class range, and every file repaired or skipped."""
    counts = report["classes"].values()
    lines = [
        f"{report['num_examples']:,} images of {len(report['classes'])} classes -> "
        f"{report['num_shards']} {report['split']!r} shards in {output_dir}"
        + (f" (shorter side {report['resize']} px)" if report.get("resize") else ""),
        f"images per class: {min(counts)} to {max(counts)} "
        f"(every class's count in {os.path.join(output_dir, report['split'] + '.json')})",
    ]
    lines += [f"repaired {item['file']}: {item['repair']}" for item in report["repaired"]]
    lines += [f"skipped  {item['file']}: {item['reason']}" for item in report["skipped"]]
    lines.append(f"{len(report['repaired'])} repaired, {len(report['skipped'])} skipped")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
