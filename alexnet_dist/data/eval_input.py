"""The evaluation input: every image of the split once, and as many steps on every worker."""

import os

import tensorflow as tf

from alexnet_dist.data import augment, schema
from alexnet_dist.data.input_spec import InputSpec


def images_per_worker(data_dir: str, split: str, files: list[str], workers: int) -> list[int]:
    """How many images each worker's shards (files[w::workers]) hold, from the split report."""
    counts = schema.read_split_info(data_dir, split)["shards"]
    missing = [os.path.basename(f) for f in files if os.path.basename(f) not in counts]
    if missing:
        raise schema.DataError(
            f"shard(s) {missing[:3]} in {data_dir} are not in its {split}.json report"
        )
    return [sum(counts[os.path.basename(f)] for f in files[w::workers]) for w in range(workers)]


def eval_image(image: tf.Tensor, spec: InputSpec) -> dict[str, tf.Tensor]:
    """Evaluation preprocessing: resize, then the centre crop or the paper's 10 crops."""
    image = augment.resize_shorter_side(image, spec.resize_size)
    if spec.eval_crops == 10:
        return {"pixels": augment.ten_crops(image, spec.crop_size)}
    return {"pixels": augment.center_crop(image, spec.crop_size)}


def batch_to_equal_steps(ds, batch_size: int, per_worker: list[int]) -> tf.data.Dataset:
    """Batches one worker's evaluation images and appends empty batches, so that every
    worker runs as many evaluation steps as the busiest.

    Each step sums over all workers, so every worker must take part in each one;
    a worker with fewer images sends empty batches. No image is dropped or counted
    twice.

    Args:
        per_worker: the number of images each worker holds.
    """
    steps = max(-(-n // batch_size) for n in per_worker)
    ds = ds.batch(batch_size)
    empty = tf.data.Dataset.from_tensors(
        tf.nest.map_structure(lambda s: tf.zeros([0, *s.shape[1:]], s.dtype), ds.element_spec)
    )
    return ds.concatenate(empty.repeat()).take(steps)
