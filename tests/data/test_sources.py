"""Every source tells the loop how many images each worker reads, and reads that many."""

import tensorflow as tf

from alexnet_dist.data import sources
from alexnet_dist.data.pipeline import InputSpec


def test_records_worker_examples_match_what_each_worker_reads(shapes_records):
    records, _ = shapes_records
    source = sources.Records(records)
    spec = InputSpec(data_dir="", split="train", batch_size=1, crop_size=67, resize_size=72,
                     training=True, shuffle_buffer=10)  # fmt: skip
    for workers in (1, 2, 3):
        counts = source.worker_examples("train", workers)
        read = [
            sum(1 for _ in source.dataset(spec, input_context=tf.distribute.InputContext(
                num_input_pipelines=workers, input_pipeline_id=w)))
            for w in range(workers)
        ]  # fmt: skip
        assert counts == read and sum(counts) == 120
    # 4 shards over 3 workers: one worker reads two shards, so the others set the pace.
    assert sorted(source.worker_examples("train", 3)) == [30, 30, 60]


def test_synthetic_workers_get_equal_whole_batches():
    source = sources.Synthetic(5, train_examples=100, val_examples=30)
    assert source.worker_examples("train", 3) == [33, 33, 33]
    spec = InputSpec(data_dir="", split="train", batch_size=8, crop_size=16, resize_size=16,
                     training=True)  # fmt: skip
    ctx = tf.distribute.InputContext(num_input_pipelines=3, input_pipeline_id=2)
    batches = list(source.dataset(spec, input_context=ctx))
    assert len(batches) == 33 // 8 and batches[0][0]["pixels"].shape == (8, 16, 16, 3)
    assert int(tf.reduce_max(batches[0][1])) < 5
