"""The evaluation input: every image of the split once, and as many steps on every worker."""

import numpy as np
import tensorflow as tf

from alexnet_dist.data.pipeline import make_dataset
from tests.helpers import input_spec


def test_eval_workers_run_equal_steps_and_count_every_image_once(shapes_records):
    records, _ = shapes_records
    # 4 val shards of sizes that differ over 3 workers; batches of 4.
    val = input_spec(records, split="val", training=False, batch_size=4)
    steps, labels = [], []
    for worker in range(3):
        ctx = tf.distribute.InputContext(num_input_pipelines=3, input_pipeline_id=worker)
        batches = list(make_dataset(val, input_context=ctx))
        steps.append(len(batches))
        labels.extend(np.concatenate([b[1] for b in batches]).tolist())
    assert len(set(steps)) == 1  # all take part in every summed step
    assert sorted(labels) == sorted([c for c in range(10) for _ in range(3)])


def test_ten_crop_evaluation_batches_and_pads_every_worker(shapes_records):
    records, _ = shapes_records
    val = input_spec(records, split="val", training=False, batch_size=4, eval_crops=10)
    steps, count = [], 0
    for worker in range(3):
        ctx = tf.distribute.InputContext(num_input_pipelines=3, input_pipeline_id=worker)
        batches = list(make_dataset(val, input_context=ctx))
        steps.append(len(batches))
        assert all(b[0]["pixels"].shape[1:] == (10, 67, 67, 3) for b in batches)
        count += sum(int(b[1].shape[0]) for b in batches)
    assert len(set(steps)) == 1 and count == 30
