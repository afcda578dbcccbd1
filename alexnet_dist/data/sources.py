"""Where the images come from, chosen by `data.source`: one interface for the loop.

- `shapes`: the built-in rendered dataset, converted to records once (the default).
- `tfrecord`: records made by alexnet-convert (`data.dir`).
- `tfds`: any TensorFlow Datasets image classification dataset by name
  (`data.name`, with `data.dir` as TFDS's data_dir and `data.manual_dir` for
  datasets such as imagenet2012 whose files users download themselves).
- `synthetic`: random images generated in memory, for throughput benchmarks
  without an input pipeline in the way.

Every source gives each worker a disjoint part of a split, the same
augmentation, and evaluation batches that count every image once with the same
number of steps on every worker.
"""

import abc
import contextlib
import dataclasses
import functools
import logging
import os
import zlib

import tensorflow as tf

from alexnet_dist.config import Config, ConfigError, DataConfig
from alexnet_dist.data import augment, eval_input, pipeline, schema, shapes, shard_errors, tuning
from alexnet_dist.data.input_spec import InputSpec

log = logging.getLogger(__name__)


def model_input(cfg: Config):
    """The step's half of the input: the data's batches -> the network's float32 input."""
    return functools.partial(augment.model_input, mean=cfg.data.mean, std=cfg.data.std)


def input_spec(cfg: Config, training: bool, batch_size: int, run_dir: str = "") -> InputSpec:
    """How to read the train or validation split, with this per-worker batch."""
    return InputSpec(
        data_dir="",  # the Records source fills it in
        split=cfg.data.train_split if training else cfg.data.val_split,
        batch_size=batch_size,
        crop_size=cfg.model.image_size,
        resize_size=cfg.data.resize_size,
        training=training,
        seed=cfg.trainer.seed,
        shuffle_buffer=cfg.data.shuffle_buffer,
        deterministic=cfg.data.deterministic,
        parallel_calls=cfg.data.parallel_calls,
        lighting_std=cfg.data.lighting_std,
        train_crop=cfg.data.train_crop,
        eval_crops=cfg.data.eval_crops,
        service=cfg.data.service,
        cache=cfg.data.cache,
        # Jobs of one run share a name across its restarts, never with another run's.
        service_job=f"alexnet-{zlib.crc32(os.path.abspath(run_dir).encode()):08x}",
        global_batch=cfg.data.global_batch_size if training else 0,
    )


class Source(abc.ABC):
    """A dataset as the training loop and alexnet-eval see it."""

    labels: list[str]  # class names in label order
    description: str  # for logs

    @abc.abstractmethod
    def num_examples(self, split: str) -> int:
        """Images in `split`."""

    def worker_examples(self, split: str, num_workers: int) -> list[int]:
        """The images each of `num_workers` workers reads of `split`.

        Training takes as many steps per epoch as the worker with the fewest images
        can fill, so that no worker runs out before the others.
        """
        share, extra = divmod(self.num_examples(split), num_workers)
        return [share + (w < extra) for w in range(num_workers)]

    def steps_per_epoch(self, split: str, global_batch: int, parts: int) -> int:
        """The steps of an epoch read in `parts` parts of global_batch / parts images each:
        as many as the part with the fewest images can fill, so that none runs out first."""
        steps = min(self.worker_examples(split, parts)) // (global_batch // parts)
        if steps < 1:
            raise ConfigError(
                f"data.global_batch_size={global_batch} is larger than the "
                f"{self.num_examples(split)} {split!r} images of {self.description}"
            )
        return steps

    def check_workers(self, split: str, num_workers: int) -> None:  # noqa: B027
        """Raises DataError if `split` cannot be divided between `num_workers` workers.

        Sources that split by example, not by file, can always be divided.
        """

    @abc.abstractmethod
    def dataset(
        self,
        spec: InputSpec,
        epoch: int = 0,
        skip_batches: int = 0,
        input_context: tf.distribute.InputContext | None = None,
    ) -> tf.data.Dataset:
        """One epoch of `spec.split` for this worker: (inputs, labels int32) batches, with
        inputs as `pipeline.make_dataset` describes (uint8 pixels, lighting shifts)."""

    def training_input(
        self,
        spec: InputSpec,
        epochs: range,
        steps: int,
        skip_batches: int = 0,
        input_context: tf.distribute.InputContext | None = None,
    ) -> tf.data.Dataset:
        """The training batches of `epochs` one after the other, `steps` training steps'
        worth from each, the first `skip_batches` steps of the first epoch left out
        (`pipeline.training_epochs`). A pipeline that feeds several replicas gives one
        batch per replica per step (`pipeline.batches_per_step`)."""
        per_step = pipeline.batches_per_step(input_context)
        return self._training_batches(
            spec, epochs, steps * per_step, skip_batches * per_step, input_context
        )

    def _training_batches(self, spec, epochs, batches, skip_batches, input_context):
        """`training_input` counted in this pipeline's batches. Here each epoch's dataset
        is built up front; Records builds one for the run."""
        return pipeline.epochs_one_by_one(
            lambda e, skip: self.dataset(spec, e, skip, input_context),
            epochs, batches, skip_batches,
        )  # fmt: skip

    def reading(self, split: str):
        """Context for iterating a dataset of `split`: errors that name the culprit."""
        return contextlib.nullcontext()


class Records(Source):
    """Sharded TFRecords in a folder, as alexnet-convert writes them."""

    def __init__(self, data_dir: str):
        self.data_dir = data_dir
        self.labels = schema.read_labels(data_dir)
        self.description = f"records in {data_dir}"

    def num_examples(self, split):
        return schema.read_split_info(self.data_dir, split)["num_examples"]

    def check_workers(self, split, num_workers):
        pipeline.check_enough_shards(self.data_dir, split, num_workers)

    def worker_examples(self, split, num_workers):
        files = pipeline.check_enough_shards(self.data_dir, split, num_workers)
        return eval_input.images_per_worker(self.data_dir, split, files, num_workers)

    def dataset(self, spec, epoch=0, skip_batches=0, input_context=None):
        shard_errors.check_present(self.data_dir, spec.split)
        spec = dataclasses.replace(spec, data_dir=self.data_dir, num_classes=len(self.labels))
        return pipeline.make_dataset(spec, epoch, skip_batches, input_context)

    def _training_batches(self, spec, epochs, batches, skip_batches, input_context):
        shard_errors.check_present(self.data_dir, spec.split)
        spec = dataclasses.replace(spec, data_dir=self.data_dir, num_classes=len(self.labels))
        return pipeline.training_epochs(spec, epochs, batches, skip_batches, input_context)

    def reading(self, split):
        return shard_errors.naming_bad_shards(self.data_dir, split, len(self.labels))


class TFDS(Source):
    """A TensorFlow Datasets dataset with `image` and `label` features.

    Each worker reads an even share of the split (`tfds.even_splits`), so the
    shares are disjoint and cover the split whatever the number of files.
    """

    def __init__(self, name: str, data_dir: str | None, manual_dir: str | None):
        import tensorflow_datasets as tfds

        self.tfds = tfds
        try:
            self.builder = tfds.builder(name, data_dir=data_dir)
        except tfds.core.registered.DatasetNotFoundError as e:
            raise schema.DataError(f"data.name={name!r} is not a TFDS dataset: {e}") from None
        features = self.builder.info.features
        if "image" not in features or "label" not in features:
            raise schema.DataError(
                f"TFDS dataset {name!r} has features {sorted(features)}; "
                "an image classification dataset needs 'image' and 'label'"
            )
        config = tfds.download.DownloadConfig(manual_dir=manual_dir)
        # A no-op once prepared. ImageNet needs its archives in manual_dir.
        self.builder.download_and_prepare(download_config=config)
        self.labels = list(features["label"].names)
        self.description = f"TFDS {name} in {self.builder.data_dir}"

    def _split(self, split: str, workers: int, worker: int):
        if workers == 1:
            return split
        return self.tfds.even_splits(split, n=workers, drop_remainder=False)[worker]

    def num_examples(self, split):
        return int(self.builder.as_dataset(split=split).cardinality())

    def worker_examples(self, split, num_workers):
        return [self.num_examples(self._split(split, num_workers, w)) for w in range(num_workers)]

    def dataset(self, spec, epoch=0, skip_batches=0, input_context=None):
        workers = input_context.num_input_pipelines if input_context else 1
        worker = input_context.input_pipeline_id if input_context else 0
        epoch_seed = spec.seed * 1_000_003 + epoch
        read_config = self.tfds.ReadConfig(
            shuffle_seed=epoch_seed, interleave_cycle_length=16, try_autocache=False
        )
        ds = self.builder.as_dataset(
            split=self._split(spec.split, workers, worker),
            shuffle_files=spec.training,
            read_config=read_config,
        )
        ds = ds.map(lambda x: (x["image"], tf.cast(x["label"], tf.int32)))
        ds = tuning.autotuned_if_asked(ds, spec)
        if spec.training:
            ds = ds.shuffle(spec.shuffle_buffer, seed=epoch_seed, reshuffle_each_iteration=False)
            ds = ds.enumerate().skip(skip_batches * spec.batch_size)

            def preprocess(index, image_label):
                image, label = image_label
                crop_seed, lighting_seed = pipeline.image_seeds(epoch_seed, index, workers, worker)
                return pipeline.train_decoded_image(image, crop_seed, lighting_seed, spec), label

            ds = ds.map(preprocess, num_parallel_calls=tuning.parallel_calls(spec))
            ds = ds.batch(spec.batch_size, drop_remainder=True)
        else:
            ds = ds.map(
                lambda image, label: (eval_input.eval_image(image, spec), label),
                num_parallel_calls=tuning.parallel_calls(spec),
            )
            counts = self.worker_examples(spec.split, workers)
            ds = eval_input.batch_to_equal_steps(ds, spec.batch_size, counts)
        return ds.prefetch(tf.data.AUTOTUNE)


class Synthetic(Source):
    """Random images and labels, generated once in memory and repeated.

    For measuring the training step without an input pipeline: nothing is read
    or decoded. Each worker gets num_examples / workers images of each split, in
    whole batches.
    """

    def __init__(
        self, num_classes: int, train_examples: int, val_examples: int, train_split: str = "train"
    ):
        self.labels = [f"class_{i:04d}" for i in range(num_classes)]
        self._train, self._val = train_examples, val_examples
        self._train_split = train_split
        self.description = f"synthetic data ({num_classes} classes, in memory)"

    def num_examples(self, split):
        return self._train if split == self._train_split else self._val

    def worker_examples(self, split, num_workers):
        return [self.num_examples(split) // num_workers] * num_workers

    def dataset(self, spec, epoch=0, skip_batches=0, input_context=None):
        workers = input_context.num_input_pipelines if input_context else 1
        worker = input_context.input_pipeline_id if input_context else 0
        size, batch = spec.crop_size, spec.batch_size
        shape = [batch, 10, size, size, 3] if spec.eval_crops == 10 and not spec.training else None
        seed = [spec.seed, worker]
        pixels = tf.random.stateless_uniform(
            shape or [batch, size, size, 3], seed, 0, 256, tf.int32
        )
        labels = tf.random.stateless_uniform([batch], seed, 0, len(self.labels), tf.int32)
        steps = self.num_examples(spec.split) // workers // batch - skip_batches
        inputs = {"pixels": tf.cast(pixels, tf.uint8)}
        return tf.data.Dataset.from_tensors((inputs, labels)).repeat(max(steps, 0))


def create(cfg: DataConfig) -> Source:
    """The source `cfg` names; generates the built-in dataset on first use."""
    if cfg.source == "shapes":
        spec = shapes.ShapesSpec(
            image_size=cfg.shapes.image_size,
            train_per_class=cfg.shapes.train_per_class,
            val_per_class=cfg.shapes.val_per_class,
        )
        return Records(shapes.prepare(cfg.cache_dir, spec))
    if cfg.source == "tfds":
        data_dir = os.path.expanduser(cfg.dir) if cfg.dir else None
        manual_dir = os.path.expanduser(cfg.manual_dir) if cfg.manual_dir else None
        return TFDS(cfg.name, data_dir, manual_dir)
    if cfg.source == "synthetic":
        s = cfg.synthetic
        return Synthetic(s.num_classes, s.train_examples, s.val_examples, cfg.train_split)
    path = os.path.expanduser(cfg.dir)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"data.dir={cfg.dir!r} does not exist or is not a directory")
    return Records(path)
