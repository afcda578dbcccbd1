"""What the AlexNet variants share: their widths and sizes, the paper's initialisation,
and the device scope a layer is built and run under."""

import contextlib

import keras

# Layer widths of the whole network (the paper's: both towers together).
PAPER_FILTERS = {"conv1": 96, "conv2": 256, "conv3": 384, "conv4": 384, "conv5": 256}
PAPER_UNITS = 4096
OWT_FILTERS = {"conv1": 64, "conv2": 192, "conv3": 384, "conv4": 256, "conv5": 256}
OWT_UNITS = 4096
DEFAULT_IMAGE_SIZE = {"paper": 227, "owt": 224}

# The paper's initialisation: weights N(0, 0.01); bias 1 in conv2, conv4, conv5
# and the hidden FC layers so their ReLUs start in the linear regime, 0 elsewhere.
# It is sized for mean-subtracted 0-255 pixels, and even then the constant biases
# swamp the image signal by fc7 (the logits barely vary across images at step 0):
# on a small dataset training sits at chance for thousands of steps. "he" (He
# normal kernels, zero biases; inputs scaled to unit variance) trains at once.
INITS = ("paper", "he")
PAPER_KERNEL_STD = 0.01
PAPER_BIAS_ONE = ("conv2", "conv4", "conv5", "fc6", "fc7")


def scaled(count: int, width: float) -> int:
    """A layer's filters or units at `width` times the paper's (at least one)."""
    return max(1, int(round(count * width)))


def pooled_size(size: int, variant: str, poolings: int = 3) -> int:
    """Spatial size after conv1 and the first `poolings` 3/2 poolings (0 if too small)."""
    pad = 2 if variant == "owt" else 0
    size = (size + 2 * pad - 11) // 4 + 1 if size + 2 * pad >= 11 else 0
    for _ in range(poolings):
        size = (size - 3) // 2 + 1 if size >= 3 else 0
    return size


def device_scope(device: str | None):
    """Layers built and run in this scope live on `device` (None: wherever the caller is)."""
    return keras.device(device) if device else contextlib.nullcontext()


def initializers(name: str, init: str) -> dict:
    """The kernel and bias initialisers of layer `name` (e.g. "conv2_a", "fc6_3") under `init`."""
    if init == "he":
        return {"kernel_initializer": "he_normal", "bias_initializer": "zeros"}
    return {
        "kernel_initializer": keras.initializers.RandomNormal(stddev=PAPER_KERNEL_STD),
        "bias_initializer": "ones" if name.split("_")[0] in PAPER_BIAS_ONE else "zeros",
    }
