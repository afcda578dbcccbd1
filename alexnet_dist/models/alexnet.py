"""AlexNet variants: the 2012 two-tower network and the 2014 one-tower network.

The two-tower network is written as two explicit towers, each with its own
convolution layers (`conv1_a`, `conv1_b`, ...), rather than as `Conv2D(groups=2)`:
on TF's CPU kernels the grouped convolution's backward pass is 2.6x slower, and
explicit towers are what `tower_devices` places on two devices, as the paper
placed them on two GPUs. The cross-links are explicit too: `conv3_*`, `fc6_*`,
`fc7_*` and `fc8` read the concatenated maps of both towers.

Both models return logits (the paper's softmax lives in the loss and in
prediction). They hold no strategy, file or data logic; only the device
placement the caller asks for.
"""

import contextlib
from collections.abc import Sequence

import keras

from alexnet_dist.models.lrn import LocalResponseNormalization

# Paper layer widths for the whole network (both towers together).
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
_PAPER_KERNEL_STD = 0.01
_PAPER_BIAS_ONE = ("conv2", "conv4", "conv5", "fc6", "fc7")


def _scaled(count: int, width: float) -> int:
    return max(1, int(round(count * width)))


def _pooled_size(size: int, variant: str, poolings: int = 3) -> int:
    """Spatial size after conv1 and the first `poolings` 3/2 poolings (0 if too small)."""
    pad = 2 if variant == "owt" else 0
    size = (size + 2 * pad - 11) // 4 + 1 if size + 2 * pad >= 11 else 0
    for _ in range(poolings):
        size = (size - 3) // 2 + 1 if size >= 3 else 0
    return size


def _device_scope(device: str | None):
    return keras.device(device) if device else contextlib.nullcontext()


def _concat(per_tower_maps):
    return keras.ops.concatenate([per_tower_maps["a"], per_tower_maps["b"]], axis=-1)


def _initializers(name: str, init: str) -> dict:
    if init == "he":
        return {"kernel_initializer": "he_normal", "bias_initializer": "zeros"}
    return {
        "kernel_initializer": keras.initializers.RandomNormal(stddev=_PAPER_KERNEL_STD),
        "bias_initializer": "ones" if name.split("_")[0] in _PAPER_BIAS_ONE else "zeros",
    }


def _paper_conv(name, init, filters, kernel, strides=1, padding="same"):
    return keras.layers.Conv2D(
        filters,
        kernel,
        strides=strides,
        padding=padding,
        activation="relu",
        name=name,
        **_initializers(name, init),
    )


def _paper_dense(name, init, units, activation="relu", **kwargs):
    return keras.layers.Dense(
        units, activation=activation, name=name, **_initializers(name, init), **kwargs
    )


@keras.saving.register_keras_serializable(package="alexnet_dist")
class PaperAlexNet(keras.Model):
    """The 2012 network: two towers, LRN after conv1 and conv2, overlapping pooling.

    Use `build_alexnet("paper", ...)` rather than this class directly.
    """

    TOWERS = ("a", "b")

    def __init__(
        self,
        num_classes=1000,
        image_size=227,
        width=1.0,
        dropout=0.5,
        tower_devices=None,
        init="paper",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.image_size = image_size
        self.width = width
        self.dropout_rate = dropout
        self.init = init
        self.tower_devices = list(tower_devices) if tower_devices else [None, None]

        # Each tower holds half of every layer. Layers are attributes named like
        # `conv1_a` (not dicts of layers) so that checkpoints track them by name.
        half = {k: _scaled(v // 2, width) for k, v in PAPER_FILTERS.items()}
        units = _scaled(PAPER_UNITS // 2, width)
        conv_args = {"conv1": (11, 4, "valid"), "conv2": (5, 1, "same")}
        for t in self.TOWERS:
            for stage in PAPER_FILTERS:
                kernel, strides, padding = conv_args.get(stage, (3, 1, "same"))
                name = f"{stage}_{t}"
                setattr(self, name, _paper_conv(name, init, half[stage], kernel, strides, padding))
            for stage in ("lrn1", "lrn2"):
                setattr(self, f"{stage}_{t}", LocalResponseNormalization(name=f"{stage}_{t}"))
            for stage in ("pool1", "pool2", "pool5"):
                setattr(self, f"{stage}_{t}", keras.layers.MaxPooling2D(3, 2, name=f"{stage}_{t}"))
            setattr(self, f"flatten_{t}", keras.layers.Flatten(name=f"flatten_{t}"))
            for stage in ("fc6", "fc7"):
                setattr(self, f"{stage}_{t}", _paper_dense(f"{stage}_{t}", init, units))
                drop = f"dropout{stage[2]}_{t}"
                setattr(self, drop, keras.layers.Dropout(dropout, name=drop))
        # float32 logits under mixed precision: the softmax and the loss need the range.
        self.fc8 = _paper_dense("fc8", init, num_classes, activation=None, dtype="float32")

    def _own(self, stage, inputs, **kwargs):
        """Each tower applies its `stage` layer to its own maps, on its own device."""
        out = {}
        for t, device in zip(self.TOWERS, self.tower_devices, strict=True):
            with _device_scope(device):
                out[t] = getattr(self, f"{stage}_{t}")(inputs[t], **kwargs)
        return out

    def _both(self, stage, inputs):
        """Each tower applies its `stage` layer to the maps of both towers (a cross-link)."""
        out = {}
        for t, device in zip(self.TOWERS, self.tower_devices, strict=True):
            with _device_scope(device):
                out[t] = getattr(self, f"{stage}_{t}")(_concat(inputs))
        return out

    def endpoints(self, images, training=False):
        """Every stage's output, per tower: {"conv1_a": ..., "fc7_b": ..., "logits": ...}."""
        ends = {}

        def keep(name, per_tower_maps):
            ends.update({f"{name}_{t}": x for t, x in per_tower_maps.items()})
            return per_tower_maps

        # One copy of the images on each tower's device, read by its conv1 forward
        # and backward (else TensorFlow sends them to the second device twice).
        inputs = {}
        for t, device in zip(self.TOWERS, self.tower_devices, strict=True):
            with _device_scope(device):
                inputs[t] = keras.ops.copy(images) if device else images
        x = keep("conv1", self._own("conv1", inputs))
        x = keep("pool1", self._own("pool1", self._own("lrn1", x)))
        x = keep("conv2", self._own("conv2", x))
        x = keep("pool2", self._own("pool2", self._own("lrn2", x)))
        x = keep("conv3", self._both("conv3", x))
        x = keep("conv4", self._own("conv4", x))
        x = keep("conv5", self._own("conv5", x))
        x = keep("pool5", self._own("pool5", x))
        x = self._own("flatten", x)
        x = keep("fc6", self._own("dropout6", self._both("fc6", x), training=training))
        x = keep("fc7", self._own("dropout7", self._both("fc7", x), training=training))
        with _device_scope(self.tower_devices[0]):
            ends["logits"] = self.fc8(_concat(x))
        return ends

    def call(self, images, training=False):
        return self.endpoints(images, training=training)["logits"]

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "image_size": self.image_size,
            "width": self.width,
            "dropout": self.dropout_rate,
            "tower_devices": self.tower_devices,
            "init": self.init,
        }


def _owt(num_classes, image_size, width, dropout, device, init):
    """The one-tower network of "One weird trick" (torchvision's `alexnet`)."""
    f = {k: _scaled(v, width) for k, v in OWT_FILTERS.items()}
    units = _scaled(OWT_UNITS, width)
    layers = keras.layers

    def conv(name, kernel, strides=1, padding="same"):
        return layers.Conv2D(
            f[name], kernel, strides=strides, padding=padding, activation="relu", name=name,
            **_initializers(name, init),
        )  # fmt: skip

    def dense(name, units, activation="relu", **kwargs):
        return layers.Dense(
            units, activation=activation, name=name, **_initializers(name, init), **kwargs
        )

    with _device_scope(device):
        images = keras.Input((image_size, image_size, 3), name="images")
        x = layers.ZeroPadding2D(2, name="pad1")(images)
        x = conv("conv1", 11, strides=4, padding="valid")(x)
        x = layers.MaxPooling2D(3, 2, name="pool1")(x)
        x = conv("conv2", 5)(x)
        x = layers.MaxPooling2D(3, 2, name="pool2")(x)
        x = conv("conv3", 3)(x)
        x = conv("conv4", 3)(x)
        x = conv("conv5", 3)(x)
        x = layers.MaxPooling2D(3, 2, name="pool5")(x)
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dropout(dropout, name="dropout6")(x)
        x = dense("fc6", units)(x)
        x = layers.Dropout(dropout, name="dropout7")(x)
        x = dense("fc7", units)(x)
        logits = dense("fc8", num_classes, activation=None, dtype="float32")(x)
    return keras.Model(images, logits, name="alexnet_owt")


def build_alexnet(
    variant: str = "paper",
    num_classes: int = 1000,
    image_size: int | None = None,
    width: float = 1.0,
    dropout: float = 0.5,
    tower_devices: Sequence[str] | None = None,
    init: str = "paper",
    rank_group=None,
) -> keras.Model:
    """Builds an AlexNet that maps (batch, size, size, 3) images to logits.

    Args:
        variant: "paper" (Krizhevsky et al. 2012, two towers, 60,965,224 parameters
            with 1000 classes) or "owt" (Krizhevsky 2014, one tower, 61,100,840).
        num_classes: size of the output layer.
        image_size: input height and width; None for the variant's own (227 or 224).
        width: multiplier on every layer's filters and units (1.0 is the paper's).
        dropout: dropout rate before/after the hidden fully connected layers.
        tower_devices: for "paper", two device names (e.g. ["/gpu:0", "/gpu:1"]) to
            place tower a and tower b on, as the paper split the net over two GPUs;
            for "owt", one, or K >= 2 to spread it over K devices as Krizhevsky's 2014
            paper does (models/owt_hybrid.py: data-parallel convolutions, fully
            connected layers split by units). None keeps everything on the current device.
        init: "paper" (N(0, 0.01) weights, the paper's unit biases; for mean-subtracted
            0-255 pixels) or "he" (He normal, zero biases; for unit-variance inputs).
        rank_group: for "owt", the Horovod ranks of this replica (distribute/rank_group.py)
            to spread it over the 2014 way, one rank per device; this rank's part.

    Returns:
        A built `keras.Model` whose output is float logits of shape (batch, num_classes).
    """
    if variant not in DEFAULT_IMAGE_SIZE:
        raise ValueError(
            f"unknown AlexNet variant {variant!r}; choose one of {sorted(DEFAULT_IMAGE_SIZE)}"
        )
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes!r}")
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width!r}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose one of {INITS}")
    image_size = image_size or DEFAULT_IMAGE_SIZE[variant]
    if _pooled_size(image_size, variant) < 1:
        smallest = next(s for s in range(11, 512) if _pooled_size(s, variant) >= 1)
        raise ValueError(
            f"image_size={image_size} is too small for the {variant!r} AlexNet: "
            f"conv1 and three 3x3/2 poolings need at least {smallest} pixels"
        )
    if variant == "paper" and tower_devices is not None and len(tower_devices) not in (0, 2):
        raise ValueError(
            f"tower_devices={list(tower_devices)!r}: the 'paper' AlexNet has two towers, "
            "so give two device names or none"
        )

    # A model placed on devices is built by running its layers eagerly, each under its
    # device's scope, so that their variables are created there. (Calling the model first
    # would build them in a symbolic trace, whose variables ignore the device scopes.)
    if variant == "owt" and rank_group is not None:
        from alexnet_dist.models.owt_hybrid import RankShardOWT

        model = RankShardOWT(num_classes, image_size, width, dropout, rank_group, init,
                             name="alexnet_owt")  # fmt: skip
        model.call(keras.ops.zeros((1, image_size, image_size, 3)))
        # Its fully connected shards are its own: not broadcast, not summed within the group.
        rank_group.hold(
            [v for stage in ("fc6", "fc7", "fc8") for v in model.shards(stage)[0].weights]
        )
    elif variant == "owt" and tower_devices is not None and len(tower_devices) > 1:
        # Imported here: the hybrid's module builds on this one's layers.
        from alexnet_dist.models.owt_hybrid import HybridOWT

        model = HybridOWT(num_classes, image_size, width, dropout, tower_devices, init,
                          name="alexnet_owt")  # fmt: skip
        model.call(keras.ops.zeros((len(tower_devices), image_size, image_size, 3)))
    elif variant == "owt":
        return _owt(num_classes, image_size, width, dropout, (tower_devices or [None])[0], init)
    else:
        model = PaperAlexNet(
            num_classes=num_classes,
            image_size=image_size,
            width=width,
            dropout=dropout,
            tower_devices=tower_devices,
            init=init,
            name="alexnet_paper",
        )
        model.endpoints(keras.ops.zeros((1, image_size, image_size, 3)))
    model(keras.ops.zeros((len(tower_devices or [None]), image_size, image_size, 3)))
    return model
