"""`alexnet-convert`: a class-per-folder image tree -> sharded TFRecords and a label map.

    alexnet-convert /data/imagenet/train /data/records --split train --num-shards 1024
    alexnet-convert /data/imagenet/val-by-class /data/records --split val --num-shards 128

The second split reuses the first one's labels.txt, so labels agree across splits.
"""

import argparse
import logging
import os
import sys

from alexnet_dist.data.converter import ConversionError, convert_tree


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="alexnet-convert", description=__doc__.split("\n\n")[0])
    p.add_argument("input_dir", help="folder with one subfolder of images per class")
    p.add_argument("output_dir", help="folder for the shards, labels.txt and <split>.json")
    p.add_argument(
        "--split", default="train", help="split name used in shard names (default: train)"
    )
    p.add_argument("--num-shards", type=int, default=16, help="number of shards (default: 16)")
    p.add_argument(
        "--workers", type=int, default=None, help="processes writing shards (default: all cores)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffle across shards")
    p.add_argument(
        "--overwrite", action="store_true", help="replace this split if the output already has it"
    )
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip files that are not decodable images (they are listed) instead of failing",
    )
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        report = convert_tree(
            args.input_dir,
            args.output_dir,
            args.split,
            args.num_shards,
            workers=args.workers,
            overwrite=args.overwrite,
            skip_bad=args.skip_bad,
            seed=args.seed,
        )
    except ConversionError as e:
        print(f"alexnet-convert: error: {e}", file=sys.stderr)
        return 2
    print(
        f"{report['num_examples']} images of {len(report['classes'])} classes -> "
        f"{report['num_shards']} {args.split!r} shards in {args.output_dir}"
    )
    for item in report["repaired"]:
        print(f"repaired {item['file']}: {item['repair']}")
    for item in report["skipped"]:
        print(f"skipped  {item['file']}: {item['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
