"""Evaluation: the validation pass of a training run, and a checkpoint's or an exported
model's top-1 and top-5 on a split, every image counted once (no dropped remainder)."""

import dataclasses

import tensorflow as tf

from alexnet_dist.config import Config, DistributeConfig
from alexnet_dist.data import schema, sources
from alexnet_dist.data.pipeline import list_shards
from alexnet_dist.distribute.backends import create_runtime
from alexnet_dist.training.run_dir import RunError, load_config, load_model, read_labels
from alexnet_dist.training.step import make_eval_step
from alexnet_dist.training.summaries import Meter


def evaluate(cfg: Config, eval_step, source: sources.Source, batches) -> dict[str, float]:
    """Loss, top-1 and top-5 over the validation split's `batches`, each image counted once.
    One input per run, iterated anew: one built per evaluation kept ~1 MB each time."""
    meter = Meter()
    with source.reading(cfg.data.val_split):
        for images_labels in batches:
            meter.add(eval_step(images_labels))
    return {k: v for k, v in meter.result().items() if k in ("loss", "top1", "top5")}


def evaluate_checkpoint(
    run_dir: str, checkpoint: str, data_dir: str | None, split: str | None, crops: int, batch: int
) -> dict:
    """{"loss", "top1", "top5", "count"} of a run's checkpoint on a split of records."""
    cfg = load_config(run_dir)
    labels = read_labels(run_dir)
    source = sources.Records(data_dir) if data_dir else sources.create(cfg.data)
    if source.labels != labels:
        raise RunError(
            f"the classes of {source.description} ({len(source.labels)}) differ from the "
            f"run's labels.txt ({len(labels)}): this is not the run's dataset"
        )
    model = load_model(cfg, checkpoint, len(labels))
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
