"""The one-tower network with its fully connected layers in shards: what both placements of
Krizhevsky's "One weird trick" (2014) hold.

The convolutions hold about 4% of the parameters and do 90-95% of the work, so
the 2014 hybrid runs them data-parallel: each of K devices (or Horovod ranks)
runs conv1-conv5 on its 1/K of the batch. The fully connected layers hold the
other 96% and little of the work, so they run model-parallel: device j holds 1/K
of the units of fc6, fc7 and fc8 (`fc6_j`, ...) and computes them for the whole
batch. `SplitOWT` is that network's layers, with the one-device network's names
and creation order; where they run and how the activations are exchanged is the
placement's (distribute/owt_hybrid.py: over K devices of one process, or over K
ranks). `one_device_groups` says which of its variables make each of the
one-device network's, so that checkpoints are written and read in the one-device
form and the hybrid starts from the one-device network's initial weights.
"""

import keras

from alexnet_dist.models.layers import OWT_FILTERS, OWT_UNITS, initializers, scaled

FC_LAYERS = ("fc6", "fc7", "fc8")


def shard_sizes(units: int, shards: int) -> list[int]:
    """Units per device: as even as they go, the first devices taking one more (10 over 4:
    3, 3, 2, 2)."""
    return [units // shards + (1 if k < units % shards else 0) for k in range(shards)]


class SplitOWT(keras.Model):
    """What both forms of the hybrid hold: the one-device network's convolutions and
    dropouts, and the shards `held` (of K) of its fully connected layers."""

    def __init__(self, num_classes, image_size, width, dropout, init, shards, held, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.image_size = image_size
        self.width = width
        self.dropout_rate = dropout
        self.init = init
        f = {k: scaled(v, width) for k, v in OWT_FILTERS.items()}
        units = scaled(OWT_UNITS, width)
        layers = keras.layers

        def conv(name, kernel, strides=1, padding="same"):
            return layers.Conv2D(
                f[name], kernel, strides=strides, padding=padding, activation="relu",
                name=name, **initializers(name, init),
            )  # fmt: skip

        # The names are the one-device network's (models/alexnet.py `_owt`), so that both
        # have the same layers.
        self.pad1 = layers.ZeroPadding2D(2, name="pad1")
        self.conv1 = conv("conv1", 11, strides=4, padding="valid")
        self.pool1 = layers.MaxPooling2D(3, 2, name="pool1")
        self.conv2 = conv("conv2", 5)
        self.pool2 = layers.MaxPooling2D(3, 2, name="pool2")
        self.conv3 = conv("conv3", 3)
        self.conv4 = conv("conv4", 3)
        self.conv5 = conv("conv5", 3)
        self.pool5 = layers.MaxPooling2D(3, 2, name="pool5")
        self.flatten = layers.Flatten(name="flatten")
        self.dropout6 = layers.Dropout(dropout, name="dropout6")
        self.dropout7 = layers.Dropout(dropout, name="dropout7")
        # Layers are attributes named like `fc6_0` (not lists) so that they are tracked by name.
        widths = {"fc6": units, "fc7": units, "fc8": num_classes}
        self.widths, self.shard_count, self.held = widths, shards, list(held)
        for stage in FC_LAYERS:
            # float32 logits under mixed precision, as in the one-device network.
            activation, dtype = (None, "float32") if stage == "fc8" else ("relu", None)
            sizes = shard_sizes(widths[stage], shards)
            for k in self.held:
                name = f"{stage}_{k}"
                layer = layers.Dense(
                    sizes[k], activation=activation, dtype=dtype, name=name,
                    **initializers(stage, init),
                )  # fmt: skip
                setattr(self, name, layer)

    def shards(self, stage: str) -> list:
        return [getattr(self, f"{stage}_{k}") for k in self.held]

    # The other shards of a layer live on other ranks (RankShardOWT sums over them);
    # None: every shard is in this model.
    sum_over_shards = None

    def layer_shards(self) -> list[list]:
        """The variables of each split layer held here, one list per layer (each fully
        connected kernel and bias): what a layer-wise optimizer (LARS) takes as one."""
        return [
            [getattr(shard, weight) for shard in self.shards(stage)]
            for stage in FC_LAYERS
            for weight in ("kernel", "bias")
        ]

    @staticmethod
    def _conv(layer, x):
        """`layer` on this device with this device's one copy of its weights.

        Calling the layer would read its kernel from the first device twice per
        step, once for the forward and once for the backward convolution (what
        TensorFlow's graph optimiser made of it: graph_trace.trace counted the
        kernel twice). One explicit read per device halves that.
        """
        if not layer.built:  # building (on the first device): the usual call
            return layer(x)
        kernel = keras.ops.copy(keras.ops.cast(layer.kernel, layer.compute_dtype))
        bias = keras.ops.copy(keras.ops.cast(layer.bias, layer.compute_dtype))
        return layer.activation(
            layer.convolution_op(keras.ops.cast(x, kernel.dtype), kernel) + bias
        )

    def features(self, images, training):
        """conv1-conv5 on this device's images, pooled, flattened, after dropout6."""
        x = self.pool1(self._conv(self.conv1, self.pad1(images)))
        x = self.pool2(self._conv(self.conv2, x))
        for layer in (self.conv3, self.conv4, self.conv5):
            x = self._conv(layer, x)
        return self.dropout6(self.flatten(self.pool5(x)), training=training)

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "image_size": self.image_size,
            "width": self.width,
            "dropout": self.dropout_rate,
            "init": self.init,
        }


def one_device_groups(model: SplitOWT) -> list[list]:
    """For each trainable variable of the one-device network, in its order: the variables of
    `model` that hold it, to be concatenated along their last axis (the units). A
    RankShardOWT holds one of them; the other ranks of its group hold the rest."""
    groups = []
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5"):
        layer = getattr(model, name)
        groups += [[layer.kernel], [layer.bias]]
    for stage in FC_LAYERS:
        shards = model.shards(stage)
        groups += [[s.kernel for s in shards], [s.bias for s in shards]]
    return groups
