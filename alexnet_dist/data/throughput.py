"""How fast the input pipeline runs: images/s within epochs, and the floor of any JPEG pipeline.

The figure is the steady state within epochs: each epoch's dataset is new (its
order and augmentation are seeded by the epoch), and its first batch waits for
the shuffle buffer to fill. That wait is timed apart; on a small set of records
it would otherwise decide the figure.
"""

import statistics
import time

import tensorflow as tf

from alexnet_dist.data import augment, schema
from alexnet_dist.data.input_spec import InputSpec
from alexnet_dist.data.pipeline import records
from alexnet_dist.data.tuning import parallel_calls


def decode_only(spec: InputSpec, epoch: int = 0) -> tf.data.Dataset:
    """The floor of any JPEG input pipeline on these records: read them in the training
    order, decode a random crop window of each into uint8, batch. Nothing else."""

    def decode(index, serialized):
        features = schema.parse(serialized)
        encoded = features["image/encoded"]
        shape = tf.io.extract_jpeg_shape(encoded)
        seed = tf.stack([tf.constant(epoch, tf.int64), index])
        top, left = augment.crop_window(shape[0], shape[1], spec.crop_size, seed)
        window = tf.stack([top, left, spec.crop_size, spec.crop_size])
        image = tf.io.decode_and_crop_jpeg(encoded, window, channels=3)
        return image, tf.cast(features["image/class/label"], tf.int32)

    ds = records(spec, epoch).map(decode, num_parallel_calls=parallel_calls(spec))
    return ds.batch(spec.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def measure(dataset_fn, warmup: int, steps: int) -> tuple[float, float]:
    """(images/s within epochs, median seconds to an epoch's first batch).

    Epochs follow each other as in training, until `steps` batches were timed
    after `warmup`; an epoch's first batch is timed apart from the rest.
    """
    images, seconds, starts = 0, 0.0, []
    epoch, seen = 0, 0
    while seen < warmup + steps:
        clock = time.perf_counter()
        iterator = iter(dataset_fn(epoch))
        first = next(iterator, None)
        if first is None:
            raise schema.DataError("the split holds less than one batch; lower --batch-size")
        starts.append(time.perf_counter() - clock)
        seen += 1
        clock = time.perf_counter()
        for batch in iterator:
            if seen >= warmup:
                images += int(batch[1].shape[0])
            seen += 1
            if seen == warmup:
                clock = time.perf_counter()
            if seen >= warmup + steps:
                break
        if seen > warmup:
            seconds += time.perf_counter() - clock
        epoch += 1
    if not images:
        raise schema.DataError("an epoch holds fewer than two batches; lower --batch-size")
    return images / seconds, statistics.median(starts)
