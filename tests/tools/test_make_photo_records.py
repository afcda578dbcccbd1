"""tools/make_photo_records.py: benchmark records cut from scikit-image's photographs."""

import json

import pytest
import tensorflow as tf

from alexnet_dist.data import schema
from tests.helpers import run_cli

pytestmark = pytest.mark.slow  # the tool in a process of its own


def test_makes_photo_jpeg_records_at_the_papers_size(tmp_path):
    out = tmp_path / "photos"
    result = run_cli(["tools/make_photo_records.py", str(out), "--images", "24", "--shards", "3"])
    assert result.returncode == 0, result.stderr[-2000:]
    info = json.loads((out / "records" / "train.json").read_text())
    assert info["num_examples"] == 24 and len(info["shards"]) == 3
    assert len((out / "records" / "labels.txt").read_text().split()) == 8  # one per photograph
    sizes = set()
    for record in tf.data.TFRecordDataset(sorted(map(str, (out / "records").glob("train-*")))):
        encoded = schema.parse(record)["image/encoded"]
        shape = tf.io.extract_jpeg_shape(encoded).numpy()
        assert min(shape[:2]) == 256 and shape[2] == 3
        sizes.add(len(encoded.numpy()))
    assert len(sizes) == 24 and min(sizes) > 5_000  # photographs, not flat shapes
    # A second run into the same folder refuses, and leaves what is there.
    again = run_cli(["tools/make_photo_records.py", str(out), "--images", "8"])
    assert again.returncode == 1 and "choose a new folder" in again.stderr
    assert json.loads((out / "records" / "train.json").read_text())["num_examples"] == 24
