import numpy as np
import pytest
import tensorflow as tf

from alexnet_dist.data import augment, stats
from alexnet_dist.data.batch_slices import BatchSlices
from alexnet_dist.data.pipeline import (
    InputSpec,
    list_shards,
    make_dataset,
    training_epochs,
)
from alexnet_dist.data.schema import DataError


def spec(records, **kw):
    base = dict(
        data_dir=records, split="train", batch_size=8, crop_size=67, resize_size=72,
        training=True, seed=3, shuffle_buffer=64,
    )  # fmt: skip
    return InputSpec(**{**base, **kw})


def test_train_batches_are_uint8_pixels_and_the_network_input_is_made_in_the_step(
    shapes_records,
):
    records, _ = shapes_records
    batches = list(make_dataset(spec(records)))
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
    images = augment.model_input(inputs, stats.IMAGENET_MEAN, stats.PIXEL_STD).numpy()
    assert images.dtype == np.float32
    pixels = inputs["pixels"].numpy()
    pixels[mirrored] = pixels[mirrored, :, ::-1]
    want = (pixels - np.array(stats.IMAGENET_MEAN)) / np.array(stats.PIXEL_STD)
    np.testing.assert_allclose(images, want, rtol=1e-6, atol=1e-5)


def test_eval_reads_every_image_once_centre_cropped(shapes_records):
    records, _ = shapes_records
    ds = make_dataset(spec(records, split="val", training=False, batch_size=7))
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
        return [b for b in make_dataset(spec(records, seed=seed), epoch=e, skip_batches=skip)]

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


def crop_and_flip(crop_fn, *args):
    """An augmentation's crop, mirrored as the step mirrors it."""
    image, decision = crop_fn(*args)
    return augment.mirror(image[None], decision[None])[0]


def test_augmentation_crops_and_flips():
    image = tf.reshape(tf.range(10 * 12 * 3, dtype=tf.int32), (10, 12, 3))
    seeds = [tf.constant([0, i], tf.int64) for i in range(40)]
    crops = {crop_and_flip(augment.random_crop, image, 8, s).numpy().tobytes() for s in seeds}
    assert len(crops) > 10  # different positions and mirrors
    # The mirror decision is the draw tf.image.stateless_random_flip_left_right makes.
    for seed in seeds:
        decision = augment.mirror_decision(seed)
        flipped = tf.image.stateless_random_flip_left_right(image, seed)
        assert bool(decision) == (not np.array_equal(flipped, image))
    assert 10 < sum(bool(augment.mirror_decision(s)) for s in seeds) < 30
    crop = crop_and_flip(augment.random_crop, image, 8, tf.constant([1, 2], tf.int64)).numpy()
    rows = image.numpy()
    windows = [rows[top : top + 8, left : left + 8] for top in range(3) for left in range(5)]
    found = any(np.array_equal(crop, w) or np.array_equal(crop, w[:, ::-1]) for w in windows)
    assert found
    centre = augment.center_crop(image, 8).numpy()
    np.testing.assert_array_equal(centre, rows[1:9, 2:10])


def test_resize_shorter_side_keeps_aspect():
    image = tf.zeros((50, 100, 3), tf.uint8)
    assert augment.resize_shorter_side(image, 25).shape == (25, 50, 3)
    assert augment.resize_shorter_side(image, 50) is not None
    assert tuple(augment.resize_shorter_side(image, 50).shape) == (50, 100, 3)


def test_workers_read_disjoint_shards_that_cover_the_split(shapes_records):
    records, _ = shapes_records
    files = list_shards(records, "val")
    assert len(files) == 4
    val = spec(records, split="val", training=False)
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


def test_eval_workers_run_equal_steps_and_count_every_image_once(shapes_records):
    records, _ = shapes_records
    # 4 val shards of sizes that differ over 3 workers; batches of 4.
    val = spec(records, split="val", training=False, batch_size=4)
    steps, labels = [], []
    for worker in range(3):
        ctx = tf.distribute.InputContext(num_input_pipelines=3, input_pipeline_id=worker)
        batches = list(make_dataset(val, input_context=ctx))
        steps.append(len(batches))
        labels.extend(np.concatenate([b[1] for b in batches]).tolist())
    assert len(set(steps)) == 1  # all take part in every summed step
    assert sorted(labels) == sorted([c for c in range(10) for _ in range(3)])


def test_ten_crops_equal_the_crops_taken_by_hand():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (80, 90, 3)).astype(np.uint8)  # centre square: columns 5-84
    crops = augment.ten_crops(tf.constant(image), 67).numpy()
    square = image[:, 5:85]
    f = 80 - 67
    by_hand = [
        square[:67, :67], square[:67, f:], square[f:, :67], square[f:, f:],
        square[f // 2 : f // 2 + 67, f // 2 : f // 2 + 67],
    ]  # fmt: skip
    by_hand += [c[:, ::-1] for c in by_hand]
    assert crops.shape == (10, 67, 67, 3)
    for got, want in zip(crops, by_hand, strict=True):
        np.testing.assert_array_equal(got, want)


def test_pca_lighting_shifts_every_pixel_along_the_eigenvectors_by_alpha_lambda():
    pixels = tf.random.stateless_uniform([2, 5, 6, 3], [1, 2], 0, 256, tf.int32)
    pixels = tf.cast(pixels, tf.uint8)
    eigenvectors = np.array(stats.PCA_EIGENVECTORS)
    alphas = []
    for i in range(400):
        seed = tf.constant([7, i], tf.int64)
        shifts = tf.stack([augment.lighting_shift(0.1, seed), tf.zeros([3])])
        lit = augment.model_input({"pixels": pixels, "lighting": shifts}, [0.0] * 3, [1.0] * 3)
        shift = (lit - tf.cast(pixels, tf.float32)).numpy()
        # The same RGB offset on every pixel of the image, and only of that image...
        np.testing.assert_allclose(shift[0], np.broadcast_to(shift[0, 0, 0], (5, 6, 3)), atol=1e-4)
        np.testing.assert_array_equal(shift[1], 0.0)
        shift = shift[0, 0, 0]
        # ...equal to 255 * P (alpha * lambda) for the alpha drawn from this image's seed.
        alpha = tf.random.stateless_normal([3], seed, stddev=0.1).numpy()
        want = 255 * eigenvectors @ (alpha * np.array(stats.PCA_EIGENVALUES))
        np.testing.assert_allclose(shift, want, rtol=1e-4, atol=1e-4)
        alphas.append(np.linalg.solve(eigenvectors, shift / 255) / stats.PCA_EIGENVALUES)
    # alpha ~ N(0, 0.1): the largest component moves pixels by ~0.1 * 0.2175 * 255 = 5.5.
    assert np.std(alphas, axis=0) == pytest.approx([0.1, 0.1, 0.1], rel=0.15)
    assert np.abs(np.mean(alphas, axis=0)).max() < 0.02


def test_training_with_lighting_differs_only_by_a_per_image_colour_shift(shapes_records):
    records, _ = shapes_records
    plain_inputs = next(iter(make_dataset(spec(records))))[0]
    lit_inputs = next(iter(make_dataset(spec(records, lighting_std=0.1))))[0]
    assert lit_inputs["lighting"].shape == (8, 3) and lit_inputs["lighting"].dtype == tf.float32
    # Same crops and flips: the seeds are shared.
    np.testing.assert_array_equal(plain_inputs["pixels"], lit_inputs["pixels"])
    plain = augment.model_input(plain_inputs).numpy()
    lit = augment.model_input(lit_inputs).numpy()
    shift = lit - plain
    per_image = shift.reshape(8, -1, 3)
    np.testing.assert_allclose(per_image, per_image[:, :1].repeat(per_image.shape[1], 1), atol=1e-3)
    assert np.all(np.abs(per_image[:, 0]).max(axis=1) > 0.01)


def test_ten_crop_evaluation_batches_and_pads_every_worker(shapes_records):
    records, _ = shapes_records
    val = spec(records, split="val", training=False, batch_size=4, eval_crops=10)
    steps, count = [], 0
    for worker in range(3):
        ctx = tf.distribute.InputContext(num_input_pipelines=3, input_pipeline_id=worker)
        batches = list(make_dataset(val, input_context=ctx))
        steps.append(len(batches))
        assert all(b[0]["pixels"].shape[1:] == (10, 67, 67, 3) for b in batches)
        count += sum(int(b[1].shape[0]) for b in batches)
    assert len(set(steps)) == 1 and count == 30


def _jpeg(height, width, seed=0):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    return tf.io.encode_jpeg(tf.constant(pixels), quality=95)


@pytest.mark.parametrize("size", [(72, 90), (90, 72)])
def test_fused_decode_and_crop_equals_decoding_then_cropping(size):
    encoded = _jpeg(*size)
    decoded = tf.io.decode_jpeg(encoded, channels=3)
    for i in range(10):
        seed = tf.constant([5, i], tf.int64)
        fused = crop_and_flip(augment.decode_random_crop, encoded, 72, 67, seed)
        plain = crop_and_flip(augment.random_crop, decoded, 67, seed)
        assert fused.shape == (67, 67, 3)
        # The same window: libjpeg decodes it alone, and its chroma upsampling differs
        # only along the window's edge at odd offsets.
        diff = np.abs(fused.numpy().astype(int) - plain.numpy().astype(int))
        assert diff.mean() < 0.5 and np.mean(diff <= 2) > 0.98


def test_larger_images_are_resized_before_the_crop():
    encoded = _jpeg(144, 180)
    seed = tf.constant([1, 1], tf.int64)
    got = crop_and_flip(augment.decode_random_crop, encoded, 72, 67, seed)
    resized = augment.resize_shorter_side(tf.io.decode_jpeg(encoded, channels=3), 72)
    np.testing.assert_array_equal(got, crop_and_flip(augment.random_crop, resized, 67, seed))


def test_inception_crop_is_a_seeded_resized_window():
    encoded = _jpeg(80, 120)
    crops = [
        crop_and_flip(augment.decode_inception_crop, encoded, 32, tf.constant([0, i], tf.int64))
        for i in range(12)
    ]
    assert all(c.shape == (32, 32, 3) and c.dtype == tf.uint8 for c in crops)
    assert len({c.numpy().tobytes() for c in crops}) == 12
    again = crop_and_flip(augment.decode_inception_crop, encoded, 32, tf.constant([0, 3], tf.int64))
    np.testing.assert_array_equal(again, crops[3])


def test_inception_training_batches(shapes_records):
    records, _ = shapes_records
    inputs, labels = next(iter(make_dataset(spec(records, train_crop="inception"))))
    assert inputs["pixels"].shape == (8, 67, 67, 3) and labels.shape == (8,)


def test_cache_serves_later_epochs_from_memory(shapes_records, tmp_path):
    import shutil

    records, _ = shapes_records
    copy = tmp_path / "records"
    shutil.copytree(records, copy)
    cached = spec(str(copy), cache=True)
    first = [b[1].numpy() for b in make_dataset(cached, epoch=0)]
    for shard in copy.glob("train-*.tfrecord"):
        shard.write_bytes(b"not records")  # later epochs must not read the files
    second = [b[1].numpy() for b in make_dataset(cached, epoch=1)]
    assert len(first) == len(second) == 120 // 8
    assert sorted(np.concatenate(first)) == sorted(np.concatenate(second))
    assert not all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_runtimes_iterate_the_input_without_the_autotune_loop_unless_asked(shapes_records):
    # The loop's thread made destroying each epoch's iterator wait up to a minute
    # (pipeline.without_autotune_loop); data.parallel_calls=-1 asks for autotuning.
    from alexnet_dist.config import DistributeConfig
    from alexnet_dist.distribute import create_runtime

    records, _ = shapes_records
    runtime = create_runtime(DistributeConfig())
    for parallel_calls, autotuned in ((0, False), (2, False), (-1, True)):
        train = spec(records, training=True, parallel_calls=parallel_calls)
        iterated = runtime.distribute_dataset(lambda ctx, s=train: make_dataset(s))
        assert iterated.options().autotune.enabled is autotuned, parallel_calls
        assert next(iter(iterated))[0]["pixels"].dtype == tf.uint8


def test_batch_slices_of_any_worker_count_make_up_the_one_worker_epoch(shapes_records):
    # Elastic Horovod's input: with 1, 2 or 3 workers (3 does not divide the batch of 8:
    # shares of 3, 3 and 2), the workers' slices of each step, put together, are the
    # one-worker batch: the same images with the same crops and flips. So is a resume
    # mid-epoch with another worker count (skip_batches counts global batches).
    records, _ = shapes_records
    one = list(make_dataset(spec(records), epoch=1))
    for workers in (1, 2, 3):
        parts = [_slice(records, BatchSlices(workers, w, workers)) for w in range(workers)]
        assert [len(p) for p in parts] == [len(one) - 4] * workers
        for step, whole in enumerate(one[4:]):
            for key in ("pixels", "mirror"):
                joined = np.concatenate([p[step][0][key] for p in parts])
                np.testing.assert_array_equal(joined, whole[0][key])
            np.testing.assert_array_equal(np.concatenate([p[step][1] for p in parts]), whole[1])


def _slice(records, context: BatchSlices) -> list:
    """One worker's batches of epoch 1 from step 5 on (4 global batches skipped)."""
    start, end = context.share(8)
    worker_spec = spec(records, batch_size=end - start, global_batch=8)
    return list(make_dataset(worker_spec, epoch=1, skip_batches=4, input_context=context))


def test_batch_slices_share_a_batch_out_whole():
    shares = [BatchSlices(3, w, 3).share(8) for w in range(3)]
    assert shares == [(0, 3), (3, 6), (6, 8)]
    assert [BatchSlices(4, w, 4).share(8) for w in range(4)] == [(0, 2), (2, 4), (4, 6), (6, 8)]


@pytest.mark.parametrize("cache", [False, True])
def test_one_input_for_several_epochs_is_those_epochs_one_after_the_other(shapes_records, cache):
    # The training input is built once per run (its epoch is a tensor); it must give
    # exactly the batches of the per-epoch datasets, `steps` of each, the skipped ones
    # of the first epoch left out (a resumed run).
    records, _ = shapes_records
    s = spec(records, cache=cache)
    want = [b for e in (2, 3, 4) for b in list(make_dataset(s, epoch=e))[:12]][5:]
    got = list(training_epochs(s, range(2, 5), steps=12, skip_batches=5))
    assert len(got) == len(want) == 3 * 12 - 5
    for (xg, yg), (xw, yw) in zip(got, want, strict=True):
        np.testing.assert_array_equal(xg["pixels"], xw["pixels"])
        np.testing.assert_array_equal(xg["mirror"], xw["mirror"])
        np.testing.assert_array_equal(yg, yw)
