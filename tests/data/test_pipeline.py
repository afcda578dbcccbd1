import numpy as np
import pytest
import tensorflow as tf

from alexnet_dist.config.schema import IMAGENET_MEAN, PIXEL_STD
from alexnet_dist.data import augment
from alexnet_dist.data.pipeline import list_shards, make_dataset, training_epochs
from alexnet_dist.data.schema import DataError
from tests.helpers import input_spec


def test_train_batches_are_uint8_pixels_and_the_network_input_is_made_in_the_step(
    shapes_records,
):
    records, _ = shapes_records
    batches = list(make_dataset(input_spec(records)))
    assert len(batches) == 120 // 8  # 10 classes x 12, drop_remainder
    inputs, labels = batches[0]
    assert set(inputs) == {"pixels", "mirror"}  # no lighting asked for
    assert inputs["pixels"].shape == (8, 67, 67, 3) and inputs["pixels"].dtype == tf.uint8
    assert labels.shape == (8,) and labels.dtype == tf.int32
    all_pixels = np.concatenate([b[0]["pixels"] for b in batches])
    assert all_pixels.std() > 20  # real pictures, not blanks
    assert sorted(set(np.concatenate([b[1] for b in batches]).tolist())) == list(range(10))
    mirrored = inputs["mirror"].numpy()
    assert 0 < mirrored.sum() < 8 and mirrored.dtype == bool
    # The step's half: the mirror, then (pixel - mean) / std in float32, per channel.
    images = augment.model_input(inputs, IMAGENET_MEAN, PIXEL_STD).numpy()
    assert images.dtype == np.float32
    pixels = inputs["pixels"].numpy()
    pixels[mirrored] = pixels[mirrored, :, ::-1]
    want = (pixels - np.array(IMAGENET_MEAN)) / np.array(PIXEL_STD)
    np.testing.assert_allclose(images, want, rtol=1e-6, atol=1e-5)


def test_eval_reads_every_image_once_centre_cropped(shapes_records):
    records, _ = shapes_records
    ds = make_dataset(input_spec(records, split="val", training=False, batch_size=7))
    sizes = [int(b[1].shape[0]) for b in ds]
    assert sum(sizes) == 30 and sizes[-1] == 30 % 7  # no dropped remainder
    labels = np.concatenate([b[1] for b in ds])
    assert np.bincount(labels).tolist() == [3] * 10
    # Centre crop is deterministic: two passes give the same pixels.
    first = np.concatenate([b[0]["pixels"] for b in ds])
    second = np.concatenate([b[0]["pixels"] for b in ds])
    np.testing.assert_array_equal(first, second)


def test_epoch_is_a_function_of_seed_and_epoch(shapes_records):
    records, _ = shapes_records

    def epoch(e, seed=3, skip=0):
        return [b for b in make_dataset(input_spec(records, seed=seed), epoch=e, skip_batches=skip)]

    a, b = epoch(0), epoch(0)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(xa["pixels"], xb["pixels"])
        np.testing.assert_array_equal(ya, yb)
    other = epoch(1)
    assert not all(np.array_equal(x[1], y[1]) for x, y in zip(a, other, strict=True))
    # Resuming mid-epoch sees exactly the batches that were left.
    rest = epoch(0, skip=5)
    assert len(rest) == len(a) - 5
    for (xa, ya), (xr, yr) in zip(a[5:], rest, strict=True):
        np.testing.assert_array_equal(xa["pixels"], xr["pixels"])
        np.testing.assert_array_equal(ya, yr)


def test_workers_read_disjoint_shards_that_cover_the_split(shapes_records):
    records, _ = shapes_records
    files = list_shards(records, "val")
    assert len(files) == 4
    val = input_spec(records, split="val", training=False)
    seen = []
    for worker in range(3):  # 4 shards over 3 workers: 2, 1 and 1
        ctx = tf.distribute.InputContext(num_input_pipelines=3, input_pipeline_id=worker)
        seen.append(np.concatenate([b[1] for b in make_dataset(val, input_context=ctx)]))
    assert sum(len(s) for s in seen) == 30
    assert np.bincount(np.concatenate(seen)).tolist() == [3] * 10  # disjoint and complete
    ctx = tf.distribute.InputContext(num_input_pipelines=5, input_pipeline_id=0)
    with pytest.raises(DataError, match="4 'val' shards.*cannot be split over 5 workers"):
        make_dataset(val, input_context=ctx)


def test_missing_split_is_named(shapes_records, tmp_path):
    records, _ = shapes_records
    with pytest.raises(FileNotFoundError, match="no 'test' shards"):
        list_shards(records, "test")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_shards(str(tmp_path / "nope"), "train")


def test_training_with_lighting_differs_only_by_a_per_image_colour_shift(shapes_records):
    records, _ = shapes_records
    plain_inputs = next(iter(make_dataset(input_spec(records))))[0]
    lit_inputs = next(iter(make_dataset(input_spec(records, lighting_std=0.1))))[0]
    assert lit_inputs["lighting"].shape == (8, 3) and lit_inputs["lighting"].dtype == tf.float32
    # Same crops and flips: the seeds are shared.
    np.testing.assert_array_equal(plain_inputs["pixels"], lit_inputs["pixels"])
    plain = augment.model_input(plain_inputs).numpy()
    lit = augment.model_input(lit_inputs).numpy()
    shift = lit - plain
    per_image = shift.reshape(8, -1, 3)
    np.testing.assert_allclose(per_image, per_image[:, :1].repeat(per_image.shape[1], 1), atol=1e-3)
    assert np.all(np.abs(per_image[:, 0]).max(axis=1) > 0.01)


def test_inception_training_batches(shapes_records):
    records, _ = shapes_records
    inputs, labels = next(iter(make_dataset(input_spec(records, train_crop="inception"))))
    assert inputs["pixels"].shape == (8, 67, 67, 3) and labels.shape == (8,)


def test_cache_serves_later_epochs_from_memory(shapes_records, tmp_path):
    import shutil

    records, _ = shapes_records
    copy = tmp_path / "records"
    shutil.copytree(records, copy)
    cached = input_spec(str(copy), cache=True)
    first = [b[1].numpy() for b in make_dataset(cached, epoch=0)]
    for shard in copy.glob("train-*.tfrecord"):
        shard.write_bytes(b"not records")  # later epochs must not read the files
    second = [b[1].numpy() for b in make_dataset(cached, epoch=1)]
    assert len(first) == len(second) == 120 // 8
    assert sorted(np.concatenate(first)) == sorted(np.concatenate(second))
    assert not all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


@pytest.mark.parametrize("cache", [False, True])
def test_one_input_for_several_epochs_is_those_epochs_one_after_the_other(shapes_records, cache):
    # The training input is built once per run (its epoch is a tensor); it must give
    # exactly the batches of the per-epoch datasets, `steps` of each, the skipped ones
    # of the first epoch left out (a resumed run).
    records, _ = shapes_records
    s = input_spec(records, cache=cache)
    want = [b for e in (2, 3, 4) for b in list(make_dataset(s, epoch=e))[:12]][5:]
    got = list(training_epochs(s, range(2, 5), steps=12, skip_batches=5))
    assert len(got) == len(want) == 3 * 12 - 5
    for (xg, yg), (xw, yw) in zip(got, want, strict=True):
        np.testing.assert_array_equal(xg["pixels"], xw["pixels"])
        np.testing.assert_array_equal(xg["mirror"], xw["mirror"])
        np.testing.assert_array_equal(yg, yw)
