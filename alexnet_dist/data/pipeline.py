"""The tf.data reader: shards -> decoded, augmented uint8 batches.

Order of operations (as in TF Model Garden's input reader): list the shards,
shard them by worker, interleave, shuffle, decode + augment in parallel, batch
(dropping the remainder in training so every step has the same shape), prefetch.

The host does only what must be done per image: decode the crop window (and
draw the image's mirror decision and lighting shift from its seed). Batches go
out as uint8 pixels with those: the mirror, the shift and the mean and std are
done on whole batches inside the step, on the accelerator
(`augment.model_input`). That is a quarter of the bytes to the device; on the
host, the float work per image had taken two thirds of the pipeline's time.

A training epoch's input is a function of (seed, epoch): the shard order and the
shuffle are seeded, and each image's crop and flip are drawn from a seed made of
the epoch seed and the image's position in the epoch. `skip_batches` drops the
first batches before they are decoded, so a run resumed mid-epoch continues with
exactly the batches it would have seen.
"""

import functools
import os
from collections.abc import Callable

import tensorflow as tf

from alexnet_dist.data import augment, schema
from alexnet_dist.data.batch_slices import BatchSlices
from alexnet_dist.data.eval_input import batch_to_equal_steps, eval_image, images_per_worker
from alexnet_dist.data.input_spec import InputSpec
from alexnet_dist.data.shard_errors import checked_label
from alexnet_dist.data.tuning import autotuned_if_asked, parallel_calls


def list_shards(data_dir: str, split: str) -> list[str]:
    """The sorted shard paths of `split` in `data_dir`; an error naming the folder if none."""
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"data directory {data_dir} does not exist")
    files = sorted(tf.io.gfile.glob(os.path.join(data_dir, schema.shard_pattern(split))))
    if not files:
        raise FileNotFoundError(
            f"no {split!r} shards ({schema.shard_pattern(split)}) in data directory {data_dir}"
        )
    return files


def check_enough_shards(data_dir: str, split: str, num_workers: int) -> list[str]:
    """The shards of `split`; a DataError if there are fewer than workers to read them."""
    files = list_shards(data_dir, split)
    if len(files) < num_workers:
        raise schema.DataError(
            f"{len(files)} {split!r} shards in {data_dir} cannot be split over "
            f"{num_workers} workers; convert with more shards"
        )
    return files


def _decode(features: dict[str, tf.Tensor]) -> tf.Tensor:
    return tf.io.decode_jpeg(features["image/encoded"], channels=3)


def make_dataset(
    spec: InputSpec,
    epoch: int = 0,
    skip_batches: int = 0,
    input_context: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """Builds the dataset of one epoch of `spec.split`.

    Args:
        spec: what to read and how.
        epoch: training epoch; seeds the shard order, the shuffle and the augmentation.
        skip_batches: training batches of this epoch to skip (already trained on).
        input_context: the worker's place in a multi-worker job; each worker reads
            a disjoint subset of the shards.

    Returns:
        A dataset of (inputs, labels int32 [batch]) where inputs is {"pixels": uint8
        [batch, crop, crop, 3]} ([batch, 10, crop, crop, 3] in evaluation with
        `eval_crops=10`); in training also "mirror": bool [batch], and "lighting":
        float32 [batch, 3] with PCA lighting. `augment.model_input` turns inputs
        into the network's input.
    """
    if spec.crop_size > spec.resize_size:
        raise ValueError(
            f"crop size {spec.crop_size} is larger than the resize size {spec.resize_size}"
        )
    if spec.training and not spec.service:
        return training_epochs(spec, range(epoch, epoch + 1), None, skip_batches, input_context)
    return _epoch(spec, epoch, skip_batches, input_context)


def _epoch(
    spec: InputSpec,
    epoch: int | tf.Tensor,
    skip_batches: int | tf.Tensor,
    input_context: tf.distribute.InputContext | None,
) -> tf.data.Dataset:
    """One epoch, as `make_dataset` describes it; `epoch` a tensor inside `training_epochs`."""
    sliced = spec.training and isinstance(input_context, BatchSlices)
    if sliced:  # one record order per group: seeds and skips as if the group were one worker
        group_batch = spec.global_batch // input_context.groups
        share = input_context.share(group_batch)
        input_context = input_context.group_context()
    workers = input_context.num_input_pipelines if input_context else 1
    worker = input_context.input_pipeline_id if input_context else 0
    epoch_seed = _epoch_seed(spec, epoch)
    ds = records(spec, epoch, input_context)
    if spec.training:
        # With the service the pipeline is split between its workers: skip there instead.
        skip = 0 if spec.service else skip_batches * (group_batch if sliced else spec.batch_size)
        ds = ds.skip(skip)
        if sliced:  # before decoding: a worker decodes only its own images
            ds = ds.batch(group_batch, drop_remainder=True)
            ds = ds.map(lambda i, r: (i[share[0] : share[1]], r[share[0] : share[1]]))
            ds = ds.unbatch()

        def preprocess(index, serialized):
            features = schema.parse(serialized)
            encoded = features["image/encoded"]
            if spec.service:
                # The service's workers each number their own part of the stream, so
                # positions repeat: seed from the image's file name instead.
                index = tf.strings.to_hash_bucket_fast(features["image/filename"], 2**62)
            crop_seed, lighting_seed = image_seeds(epoch_seed, index, workers, worker)
            if spec.train_crop == "inception":
                crop = augment.decode_inception_crop(encoded, spec.crop_size, crop_seed)
            else:
                crop = augment.decode_random_crop(
                    encoded, spec.resize_size, spec.crop_size, crop_seed
                )
            label = checked_label(features, spec.num_classes)
            return train_element(crop, lighting_seed, spec), label
    else:

        def preprocess(serialized):
            features = schema.parse(serialized)
            return eval_image(_decode(features), spec), checked_label(features, spec.num_classes)

    ds = ds.map(
        preprocess, num_parallel_calls=parallel_calls(spec), deterministic=spec.deterministic
    )
    if spec.training and spec.service:
        from alexnet_dist.data import service

        # Images, not batches, come back: each service worker would otherwise drop
        # its own partial last batch, and the epoch would come up short.
        job = f"{spec.service_job}-{spec.split}-epoch{epoch}-worker{worker}of{workers}"
        ds = service.distribute(ds, spec.service, job)
        ds = ds.batch(spec.batch_size, drop_remainder=True).skip(skip_batches)
        return ds.prefetch(tf.data.AUTOTUNE)
    if spec.training or workers == 1:
        return ds.batch(spec.batch_size, drop_remainder=spec.training).prefetch(tf.data.AUTOTUNE)
    all_files = list_shards(spec.data_dir, spec.split)
    per_worker = images_per_worker(spec.data_dir, spec.split, all_files, workers)
    return batch_to_equal_steps(ds, spec.batch_size, per_worker).prefetch(tf.data.AUTOTUNE)


def training_epochs(
    spec: InputSpec,
    epochs: range,
    steps: int | None,
    skip_batches: int = 0,
    input_context: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """The training batches of `epochs`, one after the other: each epoch's first `steps`
    (all of them with None), the first `skip_batches` of the first epoch left out.

    One dataset for the run, whose epoch is a tensor: a dataset built per epoch
    added its functions to TensorFlow's function library every epoch, which never
    frees them (2.8 MB an epoch in the demo; tools/soak.py). Each epoch keeps to
    `steps` batches, so a worker with more images than the others does not run into
    the next epoch.
    """
    first = epochs.start
    if spec.service:  # the service's job names are per epoch: built one by one
        return epochs_one_by_one(
            lambda e, skip: _epoch(spec, e, skip, input_context), epochs, steps, skip_batches
        )
    if spec.cache:  # the cache, made outside the epochs' function, is shared by all epochs
        records(spec, first, input_context)

    def epoch(e: tf.Tensor) -> tf.data.Dataset:
        # The order is a function of (spec.seed, epoch) alone, not of TensorFlow's global
        # seed; and tf.data compares its seeds in Python, which fails for a tensor seed
        # when the global seed is 0.
        tf.compat.v1.get_default_graph().seed = None
        skip = tf.where(e == first, tf.constant(skip_batches, tf.int64), 0)
        ds = _epoch(spec, e, skip, input_context)
        return ds if steps is None else ds.take(steps - skip)

    # AutoGraph has nothing to convert here (no tensor decides a Python branch); it
    # would only warn about every library function the epoch's construction calls.
    ds = tf.data.Dataset.range(first, epochs.stop).flat_map(
        tf.autograph.experimental.do_not_convert(epoch)
    )
    return autotuned_if_asked(ds.prefetch(tf.data.AUTOTUNE), spec)  # options stay inside


def batches_per_step(input_context: tf.distribute.InputContext | None) -> int:
    """How many batches of one input pipeline a training step takes: one per replica it
    feeds. MirroredStrategy, and MultiWorkerMirroredStrategy with several devices per
    worker, give each of a worker's replicas the next batch of the worker's one pipeline;
    a BatchSlices pipeline's batch is its rank's whole share of the step."""
    if input_context is None or isinstance(input_context, BatchSlices):
        return 1
    return input_context.num_replicas_in_sync // input_context.num_input_pipelines


def epochs_one_by_one(
    make_epoch: Callable[[int, int], tf.data.Dataset],
    epochs: range,
    steps: int | None,
    skip_batches: int = 0,
) -> tf.data.Dataset:
    """`training_epochs` for an input whose epoch must be a Python int: make_epoch(epoch,
    skip) for each epoch, built now and concatenated."""
    parts = []
    for e in epochs:
        skip = skip_batches if e == epochs.start else 0
        ds = make_epoch(e, skip)
        parts.append(ds if steps is None else ds.take(steps - skip))
    return functools.reduce(tf.data.Dataset.concatenate, parts)


def records(
    spec: InputSpec, epoch: int = 0, input_context: tf.distribute.InputContext | None = None
) -> tf.data.Dataset:
    """This worker's serialized records of one epoch, in the order training reads them.

    In training, numbered (index, record) pairs: the shard order and the shuffle
    are seeded by (spec.seed, epoch), and an image's index seeds its augmentation.
    """
    workers = input_context.num_input_pipelines if input_context else 1
    worker = input_context.input_pipeline_id if input_context else 0
    files = check_enough_shards(spec.data_dir, spec.split, workers)[worker::workers]
    epoch_seed = _epoch_seed(spec, epoch)
    if spec.cache:
        ds = _cached_records(tuple(files), spec.deterministic)
    else:
        ds = tf.data.Dataset.from_tensor_slices(files)
        if spec.training:
            ds = ds.shuffle(len(files), seed=epoch_seed, reshuffle_each_iteration=False)
        ds = _interleave(ds, len(files), spec.deterministic)
    ds = autotuned_if_asked(ds, spec)
    if not spec.training:
        return ds
    ds = ds.shuffle(spec.shuffle_buffer, seed=epoch_seed, reshuffle_each_iteration=False)
    return ds.enumerate()


def _epoch_seed(spec: InputSpec, epoch: int) -> int:
    return spec.seed * 1_000_003 + epoch


def _interleave(files: tf.data.Dataset, count: int, deterministic: bool) -> tf.data.Dataset:
    return files.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(count, 16),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )


_CACHES: dict[tuple, tf.data.Dataset] = {}


def _cached_records(files: tuple[str, ...], deterministic: bool) -> tf.data.Dataset:
    """The records of `files` in a fixed order, cached in memory once read through.

    Every epoch's dataset is built on the same cached dataset object: that is
    what lets a new pipeline read the memory filled by an earlier one.
    """
    key = (files, deterministic)
    if key not in _CACHES:
        files_ds = tf.data.Dataset.from_tensor_slices(list(files))
        _CACHES[key] = _interleave(files_ds, len(files), deterministic).cache()
    return _CACHES[key]


def image_seeds(epoch_seed: int, index: tf.Tensor, workers: int, worker: int):
    """(crop seed, lighting seed) of the image at `index` of this worker's epoch stream.

    Distinct per worker: position `index` of each worker's stream is another image.
    """
    seed = tf.stack([tf.cast(epoch_seed, tf.int64), tf.cast(index, tf.int64) * workers + worker])
    return tf.unstack(tf.random.experimental.stateless_split(seed, 2))


def train_decoded_image(image: tf.Tensor, crop_seed, lighting_seed, spec: InputSpec):
    """The training augmentation of an already decoded uint8 image (TFDS sources)."""
    if spec.train_crop == "inception":
        crop = augment.inception_crop(image, spec.crop_size, crop_seed)
    else:
        image = augment.resize_shorter_side(image, spec.resize_size)
        crop = augment.random_crop(image, spec.crop_size, crop_seed)
    return train_element(crop, lighting_seed, spec)


def train_element(crop: tuple, lighting_seed, spec: InputSpec) -> dict[str, tf.Tensor]:
    """The pipeline's element for a training image: its (crop, mirror decision), and its
    lighting shift (drawn here, per image, so that it is a function of the seed)."""
    pixels, mirror = crop
    element = {"pixels": pixels, "mirror": mirror}
    if spec.lighting_std:
        element["lighting"] = augment.lighting_shift(spec.lighting_std, lighting_seed)
    return element
