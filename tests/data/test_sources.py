"""Every source tells the loop how many images each worker reads, and reads that many."""

import json

import tensorflow as tf

from alexnet_dist.data import sources
from alexnet_dist.data.input_spec import InputSpec
from tests.helpers import train_in_process


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


def test_tfrecord_source_reads_converted_records(tmp_path, shapes_records):
    records, _ = shapes_records
    result = train_in_process(
        tmp_path / "run", "data=tfrecord", f"data.dir={records}", "data.resize_size=72",
        "data.std=[58.4,57.1,57.4]", "trainer.max_steps=3",
    )  # fmt: skip
    assert result["step"] == 3
    assert 0.0 <= result["val"]["top1"] <= 1.0


def test_tfds_source_trains_on_a_mocked_dataset(tmp_path):
    import tensorflow_datasets as tfds

    # mock_data generates random images of random sizes for imagenette's features
    # and makes download_and_prepare a no-op: the TFDS path without the download.
    with tfds.testing.mock_data(num_examples=40):
        result = train_in_process(
            tmp_path / "run", "data=tfds", "data.name=imagenette",
            "data.resize_size=72", "data.std=[58.4,57.1,57.4]", "data.eval_crops=10",
            "data.train_crop=inception", "data.global_batch_size=8", "data.eval_batch_size=8",
        )  # fmt: skip
    assert result["step"] == 2 * 5  # 40 images / 8, two epochs
    assert 0.0 <= result["val"]["top1"] <= 1.0
    labels = (tmp_path / "run" / "labels.txt").read_text().split()
    assert len(labels) == 10 and labels[0] == "n01440764"  # imagenette's WNIDs


def test_synthetic_source_needs_no_files(tmp_path):
    result = train_in_process(
        tmp_path / "run", "data=synthetic", "data.synthetic.num_classes=7",
        "data.synthetic.train_examples=64", "data.synthetic.val_examples=40",
        "data.resize_size=72", "data.eval_batch_size=20", "data.std=[1,1,1]",
    )  # fmt: skip
    assert result["step"] == 2 * 4  # 64 / 16 per epoch
    lines = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert {m["split"] for m in lines} == {"train", "val"}
    assert len((tmp_path / "run" / "labels.txt").read_text().split()) == 7
