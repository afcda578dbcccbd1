import os
import random

import numpy as np

from alexnet_dist.data import schema, shapes


def test_prepared_once_with_every_class(shapes_records):
    records, cache = shapes_records
    assert schema.read_labels(records) == list(shapes.CLASSES)
    train = schema.read_split_info(records, "train")
    assert train["num_examples"] == 120
    assert train["classes"] == {name: 12 for name in shapes.CLASSES}
    assert schema.read_split_info(records, "val")["num_examples"] == 30
    stamp = os.stat(os.path.join(records, "labels.txt")).st_mtime_ns
    spec = shapes.ShapesSpec(image_size=72, train_per_class=12, val_per_class=3)
    assert shapes.prepare(str(cache), spec) == records  # reused, not rendered again
    assert os.stat(os.path.join(records, "labels.txt")).st_mtime_ns == stamp


def test_rendering_is_deterministic_and_varied():
    a = np.asarray(shapes.render("star", 64, random.Random("x")))
    b = np.asarray(shapes.render("star", 64, random.Random("x")))
    c = np.asarray(shapes.render("star", 64, random.Random("y")))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (64, 64, 3)
