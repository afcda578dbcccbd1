"""`alexnet-bench-input`: images/s of the training input pipeline on converted records.

    alexnet-bench-input /data/records                      # the paper's augmentation, batch 128
    alexnet-bench-input /data/records --decode-only        # the floor: read and decode only
    alexnet-bench-input /data/records --target 10000       # cores needed for 10,000 img/s
    taskset -c 0-3 alexnet-bench-input /data/records       # with the cores a worker would get

Reads, decodes and augments exactly as training does (same reader, crop,
mirror, lighting shift; uint8 batches, as they leave for the accelerator), with
the CPU cores this process may use. `--decode-only` times the least any JPEG
pipeline must do on the same records: read, parse, and decode a random crop
window (`decode_and_crop_jpeg`) into uint8 batches; the distance between the two
is what the augmentation costs. Tools/make_photo_records.py makes photo-like
records to try it on.

The figure is the steady state within epochs: each epoch's dataset is new (its
order and augmentation are seeded by the epoch), and its first batch waits for
the shuffle buffer to fill. That wait is timed apart ("epoch start"); on a small
set of records it would otherwise decide the figure. Compare the images/s with
the train step's (the training log, or alexnet-bench-step): a pipeline slower
than the step leaves the accelerator waiting (TensorBoard's `data_wait` shows it).
"""

import argparse
import os
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from alexnet_dist.data import schema  # noqa: E402
from alexnet_dist.data.input_spec import InputSpec  # noqa: E402
from alexnet_dist.data.pipeline import make_dataset  # noqa: E402
from alexnet_dist.data.throughput import decode_only, measure  # noqa: E402
from alexnet_dist.data.tuning import without_autotune_loop  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="alexnet-bench-input",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("data_dir", help="records made by alexnet-convert")
    p.add_argument("--split", default="train")
    p.add_argument("--batch-size", type=int, default=128, help="per worker (default: 128)")
    p.add_argument("--image-size", type=int, default=227, help="crop side (default: 227)")
    p.add_argument("--resize", type=int, default=256, help="shorter side before the crop")
    p.add_argument("--crop", choices=("paper", "inception"), default="paper")
    p.add_argument("--lighting", type=float, default=0.1, help="PCA lighting std (0: off)")
    p.add_argument("--warmup", type=int, default=5, help="batches before timing")
    p.add_argument("--steps", type=int, default=60, help="batches timed")
    p.add_argument("--shuffle-buffer", type=int, default=10_000)
    p.add_argument(
        "--decode-only",
        action="store_true",
        help="time the floor instead: read, parse and decode the crop window, nothing else",
    )
    p.add_argument(
        "--parallel-calls",
        type=int,
        default=0,
        help="images decoded at once: 0 one per core (default, as training), -1 autotune",
    )
    p.add_argument("--runs", type=int, default=1, help="repeat, and print the median and spread")
    p.add_argument(
        "--target", type=float, default=None, metavar="IMAGES_PER_SEC",
        help="the training rate the pipeline must sustain on this worker",
    )  # fmt: skip
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        info = schema.read_split_info(args.data_dir, args.split)
    except (schema.DataError, FileNotFoundError) as e:
        print(f"alexnet-bench-input: error: {e}", file=sys.stderr)
        return 1
    spec = InputSpec(
        data_dir=args.data_dir, split=args.split, batch_size=args.batch_size,
        crop_size=args.image_size, resize_size=args.resize, training=True,
        shuffle_buffer=args.shuffle_buffer, lighting_std=args.lighting, train_crop=args.crop,
        parallel_calls=args.parallel_calls,
    )  # fmt: skip
    if args.decode_only:
        what = f"decode only (the floor): {args.image_size} crop window, uint8"
        dataset_fn = lambda epoch: without_autotune_loop(decode_only(spec, epoch))  # noqa: E731
    else:
        what = (
            f"{args.crop} crop {args.image_size} from {args.resize}, mirror, "
            f"lighting {args.lighting}"
        )
        # As the runtimes iterate it in training.
        dataset_fn = lambda epoch: without_autotune_loop(make_dataset(spec, epoch=epoch))  # noqa: E731
    cores = len(os.sched_getaffinity(0))
    print(
        f"{args.data_dir} {args.split}: {info['num_examples']:,} images, resized at "
        f"conversion to {info.get('resize') or 'no fixed size'}\n"
        f"pipeline: {what}, batch {args.batch_size}; {args.steps} batches timed after "
        f"{args.warmup}\n"
        f"cores: {cores}",
        flush=True,
    )
    rates, starts = [], []
    for run in range(args.runs):
        try:
            rate, start = measure(dataset_fn, args.warmup, args.steps)
        except schema.DataError as e:
            print(f"alexnet-bench-input: error: {args.data_dir}: {e}", file=sys.stderr)
            return 1
        rates.append(rate)
        starts.append(start)
        if args.runs > 1:
            print(f"run {run + 1}: {rate:.1f} images/s", flush=True)
    rate = statistics.median(rates)
    print(
        f"images/s: {rate:.1f}\n"
        f"images/s per core: {rate / cores:.1f}\n"
        f"epoch start: {statistics.median(starts):.2f} s to the first batch"
    )
    if args.runs > 1:
        spread = (max(rates) - min(rates)) / rate
        print(f"spread over {args.runs} runs: {100 * spread:.1f}% of the median")
    if args.target:
        need = args.target / (rate / cores)
        print(f"cores for {args.target:g} images/s: {need:.3g}")
        if rate < args.target:
            # Records converted at 256 or less gain nothing from converting them again.
            resized = info.get("resize") and info["resize"] <= 256
            smaller = "" if resized else "convert with --resize 256, or "
            print(
                f"input-bound: {rate:.1f} < {args.target:g} images/s; about {need:.0f} cores "
                f"would keep up (or {smaller}offload to the tf.data service)"
            )
            return 3
        print(f"keeps up with {args.target:g} images/s ({rate / args.target:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
