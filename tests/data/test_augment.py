"""Image preprocessing as pure functions of (image, seed)."""

import numpy as np
import pytest
import tensorflow as tf

from alexnet_dist.data import augment


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
    eigenvectors = np.array(augment.PCA_EIGENVECTORS)
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
        want = 255 * eigenvectors @ (alpha * np.array(augment.PCA_EIGENVALUES))
        np.testing.assert_allclose(shift, want, rtol=1e-4, atol=1e-4)
        alphas.append(np.linalg.solve(eigenvectors, shift / 255) / augment.PCA_EIGENVALUES)
    # alpha ~ N(0, 0.1): the largest component moves pixels by ~0.1 * 0.2175 * 255 = 5.5.
    assert np.std(alphas, axis=0) == pytest.approx([0.1, 0.1, 0.1], rel=0.15)
    assert np.abs(np.mean(alphas, axis=0)).max() < 0.02


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
