"""AlexNet variants: the 2012 two-tower network and the 2014 one-tower network.

The two-tower network is written as two explicit towers, each with its own
convolution layers (`conv1_a`, `conv1_b`, ...), rather than as `Conv2D(groups=2)`:
on TF's CPU kernels the grouped convolution's backward pass is 2.6x slower, and
explicit towers are what `tower_devices` places on two devices, as the paper
placed them on two GPUs. The cross-links are explicit too: `conv3_*`, `fc6_*`,
`fc7_*` and `fc8` read the concatenated maps of both towers.

Both models return logits (the paper's softmax lives in the loss and in
prediction). They hold no strategy, file or data logic; only the device
placement the caller asks for. The 2014 network spread over devices or ranks is
distribute/placement.py's: it builds on this module's network.
"""

from collections.abc import Sequence

import keras

from alexnet_dist.models.batch_norm import ReplicaBatchNorm
from alexnet_dist.models.layers import (
    DEFAULT_IMAGE_SIZE,
    INITS,
    OWT_FILTERS,
    OWT_UNITS,
    PAPER_FILTERS,
    PAPER_UNITS,
    device_scope,
    initializers,
    pooled_size,
    scaled,
)
from alexnet_dist.models.lrn import LocalResponseNormalization


def _concat(per_tower_maps):
    return keras.ops.concatenate([per_tower_maps["a"], per_tower_maps["b"]], axis=-1)


def _paper_conv(name, init, filters, kernel, strides=1, padding="same", batch_norm=False):
    # Before batch normalisation: no ReLU yet, and no bias (the normalisation's beta is one).
    return keras.layers.Conv2D(
        filters,
        kernel,
        strides=strides,
        padding=padding,
        activation=None if batch_norm else "relu",
        use_bias=not batch_norm,
        name=name,
        **initializers(name, init),
    )


def _paper_dense(name, init, units, activation="relu", **kwargs):
    return keras.layers.Dense(
        units, activation=activation, name=name, **initializers(name, init), **kwargs
    )


@keras.saving.register_keras_serializable(package="alexnet_dist")
class PaperAlexNet(keras.Model):
    """The 2012 network: two towers, LRN after conv1 and conv2, overlapping pooling.

    With `batch_norm`, AlexNet-BN as the large-batch papers train it (You, Gitman and
    Ginsburg 2017): batch normalisation after every convolution, before its ReLU, and no
    LRN. Each tower normalises its own maps, as it convolves them. `sync_batch_norm`:
    the statistics of the whole global batch, over every replica (Keras's synchronized
    statistics under tf.distribute; over Horovod ranks, `replica_sum`), since a
    replica's own batch can be small.

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
        batch_norm=False,
        sync_batch_norm=False,
        replica_sum=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.batch_norm = batch_norm
        self.sync_batch_norm = sync_batch_norm
        self.num_classes = num_classes
        self.image_size = image_size
        self.width = width
        self.dropout_rate = dropout
        self.init = init
        self.tower_devices = list(tower_devices) if tower_devices else [None, None]

        # Each tower holds half of every layer. Layers are attributes named like
        # `conv1_a` (not dicts of layers) so that checkpoints track them by name.
        half = {k: scaled(v // 2, width) for k, v in PAPER_FILTERS.items()}
        units = scaled(PAPER_UNITS // 2, width)
        conv_args = {"conv1": (11, 4, "valid"), "conv2": (5, 1, "same")}
        for t in self.TOWERS:
            for stage in PAPER_FILTERS:
                kernel, strides, padding = conv_args.get(stage, (3, 1, "same"))
                name = f"{stage}_{t}"
                setattr(self, name, _paper_conv(name, init, half[stage], kernel, strides, padding,
                                                batch_norm))  # fmt: skip
                if batch_norm:
                    bn = f"bn{stage[4]}_{t}"
                    setattr(self, bn, ReplicaBatchNorm(
                        replica_sum=replica_sum if sync_batch_norm else None,
                        synchronized=sync_batch_norm and replica_sum is None, name=bn,
                    ))  # fmt: skip
            if not batch_norm:
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
            with device_scope(device):
                out[t] = getattr(self, f"{stage}_{t}")(inputs[t], **kwargs)
        return out

    def _both(self, stage, inputs):
        """Each tower applies its `stage` layer to the maps of both towers (a cross-link)."""
        out = {}
        for t, device in zip(self.TOWERS, self.tower_devices, strict=True):
            with device_scope(device):
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
            with device_scope(device):
                inputs[t] = keras.ops.copy(images) if device else images

        def normalised(n, x):  # LRN after conv1 and conv2; or batch norm after each, and ReLU
            if self.batch_norm:
                x = self._own(f"bn{n}", x, training=training)
                return {t: keras.ops.relu(m) for t, m in x.items()}
            return self._own(f"lrn{n}", x) if n in (1, 2) else x

        x = keep("conv1", normalised(1, self._own("conv1", inputs)))
        x = keep("pool1", self._own("pool1", x))
        x = keep("conv2", normalised(2, self._own("conv2", x)))
        x = keep("pool2", self._own("pool2", x))
        x = keep("conv3", normalised(3, self._both("conv3", x)))
        x = keep("conv4", normalised(4, self._own("conv4", x)))
        x = keep("conv5", normalised(5, self._own("conv5", x)))
        x = keep("pool5", self._own("pool5", x))
        x = self._own("flatten", x)
        x = keep("fc6", self._own("dropout6", self._both("fc6", x), training=training))
        x = keep("fc7", self._own("dropout7", self._both("fc7", x), training=training))
        with device_scope(self.tower_devices[0]):
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
            "batch_norm": self.batch_norm,
            "sync_batch_norm": self.sync_batch_norm,
        }


def _owt(num_classes, image_size, width, dropout, device, init):
    """The one-tower network of "One weird trick" (torchvision's `alexnet`)."""
    f = {k: scaled(v, width) for k, v in OWT_FILTERS.items()}
    units = scaled(OWT_UNITS, width)
    layers = keras.layers

    def conv(name, kernel, strides=1, padding="same"):
        return layers.Conv2D(
            f[name], kernel, strides=strides, padding=padding, activation="relu", name=name,
            **initializers(name, init),
        )  # fmt: skip

    def dense(name, units, activation="relu", **kwargs):
        return layers.Dense(
            units, activation=activation, name=name, **initializers(name, init), **kwargs
        )

    with device_scope(device):
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
    batch_norm: bool = False,
    sync_batch_norm: bool = False,
    replica_sum=None,
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
            for "owt", one. None keeps everything on the current device. (The "owt"
            network over K devices or ranks, the 2014 way, is
            `distribute.placement.build_model`'s.)
        init: "paper" (N(0, 0.01) weights, the paper's unit biases; for mean-subtracted
            0-255 pixels) or "he" (He normal, zero biases; for unit-variance inputs).
        batch_norm: for "paper", AlexNet-BN: batch normalisation after each convolution
            instead of LRN (see `PaperAlexNet`).
        sync_batch_norm: its statistics over every replica's batch; `replica_sum` sums a
            tensor over the replicas where no tf.distribute strategy does (Horovod).

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
    if pooled_size(image_size, variant) < 1:
        smallest = next(s for s in range(11, 512) if pooled_size(s, variant) >= 1)
        raise ValueError(
            f"image_size={image_size} is too small for the {variant!r} AlexNet: "
            f"conv1 and three 3x3/2 poolings need at least {smallest} pixels"
        )
    towers = list(tower_devices or [])
    if variant == "paper" and len(towers) not in (0, 2):
        raise ValueError(
            f"tower_devices={towers!r}: the 'paper' AlexNet has two towers, "
            "so give two device names or none"
        )
    if variant == "owt" and batch_norm:
        raise ValueError("batch_norm=True is AlexNet-BN, the 'paper' network's variant")
    if variant == "owt":
        if len(towers) > 1:
            raise ValueError(
                f"tower_devices={towers!r}: the 'owt' AlexNet has one tower; over several "
                "devices it is the 2014 hybrid (distribute.owt_hybrid=true, built by "
                "alexnet_dist.distribute.placement.build_model)"
            )
        return _owt(num_classes, image_size, width, dropout, (towers or [None])[0], init)
    model = PaperAlexNet(
        num_classes=num_classes,
        image_size=image_size,
        width=width,
        dropout=dropout,
        tower_devices=towers or None,
        init=init,
        batch_norm=batch_norm,
        sync_batch_norm=sync_batch_norm,
        replica_sum=replica_sum,
        name="alexnet_paper_bn" if batch_norm else "alexnet_paper",
    )
    # A model placed on devices is built by running its layers eagerly, each under its
    # device's scope, so that their variables are created there. (Calling the model first
    # would build them in a symbolic trace, whose variables ignore the device scopes.)
    model.endpoints(keras.ops.zeros((1, image_size, image_size, 3)))
    model(keras.ops.zeros((1, image_size, image_size, 3)))
    return model
