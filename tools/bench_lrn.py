"""How long the paper network's four LRN layers take, forward and backward.

    .venv/bin/python tools/bench_lrn.py [--batch 64] [--repeats 7]

The layers at the shapes they have in the full-size paper network (conv1's
55x55x48 and conv2's 27x27x128 per tower, two towers), under each precision
policy, as the train step runs them: inside one tf.function, the input in the
layer's compute dtype. Prints the median time of `--repeats` calls after one
untimed call (tracing, XLA compilation). LRN is the one layer the paper network
has that the one-tower network lacks, so this is most of the difference between
their step times (README "Performance").
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from alexnet_dist.models import LocalResponseNormalization  # noqa: E402

SHAPES = [(55, 55, 48)] * 2 + [(27, 27, 128)] * 2  # lrn1_a, lrn1_b, lrn2_a, lrn2_b


def milliseconds(policy: str, batch: int, repeats: int) -> float:
    layers = [LocalResponseNormalization(dtype=policy) for _ in SHAPES]
    dtype = layers[0].compute_dtype
    rng = np.random.default_rng(0)
    # ReLU outputs of a plausible size: the sum of squares matters in the scale.
    inputs = [
        tf.cast(np.maximum(rng.normal(0, 30, (batch, *shape)), 0).astype(np.float32), dtype)
        for shape in SHAPES
    ]

    @tf.function
    def forward_backward(inputs):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = [layer(x) for layer, x in zip(layers, inputs, strict=True)]
            loss = tf.add_n([tf.reduce_sum(tf.cast(y, tf.float32)) for y in outputs])
        grads = tape.gradient(loss, inputs)
        return tf.add_n([tf.reduce_sum(tf.cast(g, tf.float32)) for g in grads])

    float(forward_backward(inputs))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        float(forward_backward(inputs))
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--policies", nargs="+", default=["float32", "mixed_bfloat16", "mixed_float16"]
    )
    args = parser.parse_args(argv)
    print(f"the paper network's 4 LRN layers, batch {args.batch}, forward + backward")
    for policy in args.policies:
        print(f"{policy:16s} {milliseconds(policy, args.batch, args.repeats):8.1f} ms")


if __name__ == "__main__":
    main()
