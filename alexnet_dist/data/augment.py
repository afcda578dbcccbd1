"""Image preprocessing as pure functions of (image, seed): the same seed gives the same crop.

Stateless random ops keep the training input a function of (seed, epoch, position
in the epoch), which is what lets a resumed run see exactly the batches an
uninterrupted run would have seen.
"""

import tensorflow as tf

from alexnet_dist.config.schema import IMAGENET_MEAN, PIXEL_STD

# The paper's "lighting" noise: principal components of ImageNet's RGB pixel values
# (pixels in [0, 1]). Eigenvalues, and eigenvectors as columns (row c is channel c).
PCA_EIGENVALUES = (0.2175, 0.0188, 0.0045)
PCA_EIGENVECTORS = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)


def resize_shorter_side(image: tf.Tensor, size: int) -> tf.Tensor:
    """Resizes so that the shorter side is `size`, keeping the aspect ratio (no-op if it is)."""
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    shorter = tf.minimum(height, width)

    def resize():
        scale = tf.cast(size, tf.float32) / tf.cast(shorter, tf.float32)
        new_h = tf.maximum(size, tf.cast(tf.round(tf.cast(height, tf.float32) * scale), tf.int32))
        new_w = tf.maximum(size, tf.cast(tf.round(tf.cast(width, tf.float32) * scale), tf.int32))
        resized = tf.image.resize(image, [new_h, new_w], method="bilinear", antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), image.dtype)

    return tf.cond(tf.equal(shorter, size), lambda: image, resize)


def crop_window(height, width, crop_size: int, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(top, left) of a crop_size square drawn uniformly inside height x width, from `seed`."""
    top_seed, left_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    top = tf.random.stateless_uniform([], top_seed, 0, height - crop_size + 1, tf.int32)
    left = tf.random.stateless_uniform([], left_seed, 0, width - crop_size + 1, tf.int32)
    return top, left


def mirror_decision(seed: tf.Tensor) -> tf.Tensor:
    """Whether to mirror the image drawn with `seed`: the same draw (uniform < 0.5) as
    `tf.image.stateless_random_flip_left_right(image, seed)` makes."""
    return tf.random.stateless_uniform([], seed) < 0.5


def mirror(pixels: tf.Tensor, decisions: tf.Tensor) -> tf.Tensor:
    """Mirrors the images of a batch ([batch, height, width, 3]) whose decision is true.

    The pipeline draws each image's decision and ships it with the pixels; the
    flip itself is done on the whole batch, in the step (`model_input`).
    """
    return tf.where(decisions[:, None, None, None], tf.reverse(pixels, axis=[2]), pixels)


def random_crop(image: tf.Tensor, crop_size: int, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The paper's training augmentation: a random crop_size square, and whether to mirror it.

    Args:
        image: (height, width, 3) image with both sides >= crop_size.
        crop_size: side of the square crop.
        seed: int shape-[2] tensor; the crop and the mirror decision are functions of it.

    Returns:
        (the crop, not mirrored; the mirror decision), see `mirror`.
    """
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    shape = tf.shape(image)
    top, left = crop_window(shape[0], shape[1], crop_size, crop_seed)
    image = tf.image.crop_to_bounding_box(image, top, left, crop_size, crop_size)
    return image, mirror_decision(flip_seed)


def decode_random_crop(
    encoded: tf.Tensor, resize_size: int, crop_size: int, seed: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """random_crop of the image resized to `resize_size`, from JPEG bytes.

    When the JPEG's shorter side is already `resize_size` (records converted with
    --resize), only the crop window is decoded (`tf.io.decode_and_crop_jpeg`),
    which skips most of the decoding work; otherwise the image is decoded and
    resized first. Both take the same window for the same seed (pixels differ
    only along the window's edge, where libjpeg upsamples chroma differently).
    """
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    shape = tf.io.extract_jpeg_shape(encoded)

    def fused():
        top, left = crop_window(shape[0], shape[1], crop_size, crop_seed)
        window = tf.stack([top, left, crop_size, crop_size])
        return tf.io.decode_and_crop_jpeg(encoded, window, channels=3)

    def full():
        image = resize_shorter_side(tf.io.decode_jpeg(encoded, channels=3), resize_size)
        resized = tf.shape(image)
        top, left = crop_window(resized[0], resized[1], crop_size, crop_seed)
        return tf.image.crop_to_bounding_box(image, top, left, crop_size, crop_size)

    image = tf.cond(tf.equal(tf.reduce_min(shape[:2]), resize_size), fused, full)
    return tf.ensure_shape(image, [crop_size, crop_size, 3]), mirror_decision(flip_seed)


def decode_inception_crop(encoded: tf.Tensor, crop_size: int, seed: tf.Tensor):
    """The Inception-style augmentation (Szegedy et al. 2015), from JPEG bytes.

    A random window of 8-100 % of the image area and aspect ratio 3/4-4/3,
    decoded alone and resized to crop_size x crop_size; and whether to mirror it.
    """
    box_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    shape = tf.io.extract_jpeg_shape(encoded)
    begin, size, _ = _inception_window(shape, box_seed)
    window = tf.stack([begin[0], begin[1], size[0], size[1]])
    image = tf.io.decode_and_crop_jpeg(encoded, window, channels=3)
    return _resize_square(image, crop_size), mirror_decision(flip_seed)


def inception_crop(image: tf.Tensor, crop_size: int, seed: tf.Tensor):
    """decode_inception_crop for an already decoded uint8 image."""
    box_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    begin, size, _ = _inception_window(tf.shape(image), box_seed)
    image = tf.slice(image, begin, size)
    return _resize_square(image, crop_size), mirror_decision(flip_seed)


def _inception_window(shape, seed):
    return tf.image.stateless_sample_distorted_bounding_box(
        shape,
        bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4]),
        seed=seed,
        min_object_covered=0.1,
        aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(0.08, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )


def _resize_square(image, side: int):
    image = tf.image.resize(image, [side, side], method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def lighting_shift(std: float, seed: tf.Tensor) -> tf.Tensor:
    """The paper's PCA colour noise of one image: the RGB shift sum_i alpha_i * lambda_i * p_i.

    alpha_i ~ N(0, std) (0.1 in the paper) is drawn once per image from `seed`;
    lambda_i, p_i are the eigenvalues and eigenvectors of ImageNet's RGB
    covariance, for pixels in [0, 1], hence the factor 255: the shift is in 0-255
    pixel units, to be added to every pixel of the image (`model_input` does).
    """
    alpha = tf.random.stateless_normal([3], seed, stddev=std)
    eigenvectors = tf.constant(PCA_EIGENVECTORS, tf.float32)
    return 255.0 * tf.linalg.matvec(eigenvectors, alpha * tf.constant(PCA_EIGENVALUES, tf.float32))


def ten_crops(image: tf.Tensor, crop_size: int) -> tf.Tensor:
    """The paper's test-time crops: from the central square, its four corner crops and
    centre crop, then the same five mirrored; (10, crop_size, crop_size, 3)."""
    shape = tf.shape(image)
    side = tf.minimum(shape[0], shape[1])
    square = center_crop(image, side)
    far = side - crop_size
    offsets = [(0, 0), (0, far), (far, 0), (far, far), (far // 2, far // 2)]
    crops = tf.stack(
        [
            tf.image.crop_to_bounding_box(square, t, left, crop_size, crop_size)
            for t, left in offsets
        ]
    )
    return tf.concat([crops, tf.reverse(crops, axis=[2])], axis=0)


def center_crop(image: tf.Tensor, crop_size: int) -> tf.Tensor:
    """The central crop_size square (evaluation)."""
    shape = tf.shape(image)
    top = (shape[0] - crop_size) // 2
    left = (shape[1] - crop_size) // 2
    return tf.image.crop_to_bounding_box(image, top, left, crop_size, crop_size)


def normalize(image: tf.Tensor, mean=IMAGENET_MEAN, std=PIXEL_STD) -> tf.Tensor:
    """uint8 pixels -> float32 (pixel - mean) / std, with mean and std in 0-255 pixel units."""
    image = tf.cast(image, tf.float32)
    return (image - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


def model_input(inputs: dict[str, tf.Tensor], mean=IMAGENET_MEAN, std=PIXEL_STD) -> tf.Tensor:
    """The network's float32 input from a batch of the input pipeline's uint8 pixels.

    The pipeline ships `pixels` (uint8, [batch, (crops,) height, width, 3]) and, in
    training, each image's `mirror` decision ([batch] bool) and, with PCA lighting,
    its `lighting` shift ([batch, 3]); this mirrors, adds the shift and normalises.
    It runs inside the train and eval steps, on the accelerator: the host only
    decodes, and sends a quarter of the bytes.
    """
    pixels = inputs["pixels"]
    if "mirror" in inputs:
        pixels = mirror(pixels, inputs["mirror"])
    image = tf.cast(pixels, tf.float32)
    if "lighting" in inputs:
        image = image + inputs["lighting"][:, None, None, :]
    return normalize(image, mean, std)
