"""`alexnet-bench-input`: images/s of the training input pipeline on converted records.

    alexnet-bench-input /data/records                      # the paper's augmentation, batch 128
    alexnet-bench-input /data/records --target 2500        # does it keep up with 2500 img/s?
    taskset -c 0-3 alexnet-bench-input /data/records       # with the cores a worker would get

Reads, decodes and augments exactly as training does (same reader, crop,
mirror, lighting, normalisation), with the CPU cores this process may use, and
times batches after a warm-up. Compare with the train step's images/s (the
training log, or tools/bench_step.py): a pipeline slower than the step leaves
the accelerator waiting (the `data_wait` scalar in TensorBoard shows it too).
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


from alexnet_dist.data import schema, stats  # noqa: E402
from alexnet_dist.data.pipeline import InputSpec, make_dataset  # noqa: E402


def measure(spec: InputSpec, warmup: int, steps: int) -> tuple[float, int]:
    """(images/s, batches timed) over `steps` batches after `warmup` batches.

    Epochs follow each other until enough batches were read, as in training.
    """

    def batches():
        epoch = 0
        while True:
            yield from make_dataset(spec, epoch=epoch)
            epoch += 1

    iterator = batches()
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    images = 0
    for _ in range(steps):
        images += int(next(iterator)[1].shape[0])
    return images / (time.perf_counter() - start), steps


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
    p.add_argument("--steps", type=int, default=30, help="batches timed")
    p.add_argument("--shuffle-buffer", type=int, default=10_000)
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
        shuffle_buffer=args.shuffle_buffer, mean=stats.IMAGENET_MEAN, std=stats.PIXEL_STD,
        lighting_std=args.lighting, train_crop=args.crop,
    )  # fmt: skip
    cores = len(os.sched_getaffinity(0))
    rate, steps = measure(spec, args.warmup, args.steps)
    print(
        f"{args.data_dir} {args.split}: {info['num_examples']:,} images, resized at "
        f"conversion to {info.get('resize') or 'no fixed size'}\n"
        f"pipeline: {args.crop} crop {args.image_size} from {args.resize}, mirror, lighting "
        f"{args.lighting}, batch {args.batch_size}; {steps} batches timed after {args.warmup}\n"
        f"cores: {cores}\n"
        f"images/s: {rate:.1f}\n"
        f"images/s per core: {rate / cores:.1f}"
    )
    if args.target:
        if rate >= args.target:
            print(f"keeps up with {args.target:g} images/s ({rate / args.target:.2f}x)")
        else:
            need = args.target / (rate / cores)
            print(
                f"input-bound: {rate:.1f} < {args.target:g} images/s; about {need:.0f} cores "
                "would keep up (or convert with --resize 256, or offload to the tf.data service)"
            )
            return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
