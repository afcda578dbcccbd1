"""The one-tower network spread over K devices as "One weird trick" (Krizhevsky 2014) spreads it.

The convolutions hold about 4% of the parameters and do 90-95% of the work, so
they run data-parallel: device k runs conv1-conv5 on its 1/K of the batch. The
fully connected layers hold the other 96% and little of the work, so they run
model-parallel: device j holds 1/K of the units of fc6, fc7 and fc8 (`fc6_j`,
...) and computes them for the whole batch.

The exchanges are all-gathers of activations, written as concatenations under
each device's scope (TensorFlow sends each piece once per device that reads
it), and autodiff makes the reverse exchanges:

- the pooled conv features of every device's examples, gathered on every device
  (B x 9216 at full size); backward, each device's share of the feature
  gradients goes back to the device that owns those examples, where the K
  pieces are summed (a reduce-scatter);
- fc6's and fc7's units, gathered on every device, since fc7 and fc8 read all of
  the previous layer;
- fc8's logits, gathered on the first device, where the step's loss reads them.

The batch is split on the host: each device receives its own images, in uint8
as the input pipeline ships them, and converts them itself (data.augment's
model_input), as in data parallelism. Converting the batch on the first device
and splitting it there would send (K-1)/K of it onwards at 4 bytes a value:
539 MB per step at K = 8 and 128 images per device, more than the all-reduce
this scheme saves.

The conv weights are one copy on the first device, read by every device each
step; their K gradients are summed there. With one batch of B images per step
in both parts, K steps of this network are K steps of the one-device network
on the same B images, up to float rounding (tests/distribute/test_owt_hybrid.py).
Dropout draws other masks, since each device draws its own.

The same scheme over K Horovod ranks, one device each, is `RankShardOWT`: one
rank's part, whose exchanges are collectives (distribute/rank_group.py).

`one_device_groups` says which of its variables make each of the one-device
network's, so that checkpoints are written and read in the one-device form.
"""

import keras
import numpy as np
import tensorflow as tf

from alexnet_dist.models.alexnet import (
    OWT_FILTERS,
    OWT_UNITS,
    _device_scope,
    _initializers,
    _scaled,
)

FC_LAYERS = ("fc6", "fc7", "fc8")


def shard_sizes(units: int, shards: int) -> list[int]:
    """Units per device: as even as they go, the first devices taking one more (10 over 4:
    3, 3, 2, 2)."""
    return [units // shards + (1 if k < units % shards else 0) for k in range(shards)]


def _part_sizes(batch: tf.Tensor, parts: int) -> tf.Tensor:
    """The batch split over the devices, the first ones taking one image more where it does
    not divide (an evaluation's last batch)."""
    k = tf.range(parts)
    return batch // parts + tf.cast(k < batch % parts, batch.dtype)


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
        f = {k: _scaled(v, width) for k, v in OWT_FILTERS.items()}
        units = _scaled(OWT_UNITS, width)
        layers = keras.layers

        def conv(name, kernel, strides=1, padding="same"):
            return layers.Conv2D(
                f[name], kernel, strides=strides, padding=padding, activation="relu",
                name=name, **_initializers(name, init),
            )  # fmt: skip

        # The names and the order of creation are the one-device network's (models/alexnet.py
        # `_owt`), so that both have the same layers, dropout seeds among them.
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
                    **_initializers(stage, init),
                )  # fmt: skip
                setattr(self, name, layer)

    def shards(self, stage: str) -> list:
        return [getattr(self, f"{stage}_{k}") for k in self.held]

    @staticmethod
    def _conv(layer, x):
        """`layer` on this device with this device's one copy of its weights.

        Calling the layer would read its kernel from the first device twice per
        step, once for the forward and once for the backward convolution (what
        TensorFlow's graph optimiser made of it here: placement.trace counted the
        kernel twice). One explicit read per device halves that.
        """
        if not layer.built:  # building (build_alexnet, on the first device): the usual call
            return layer(x)
        kernel = tf.identity(keras.ops.cast(layer.kernel, layer.compute_dtype))
        bias = tf.identity(keras.ops.cast(layer.bias, layer.compute_dtype))
        return layer.activation(
            layer.convolution_op(keras.ops.cast(x, kernel.dtype), kernel) + bias
        )

    def _features(self, images, training):
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


@keras.saving.register_keras_serializable(package="alexnet_dist")
class HybridOWT(SplitOWT):
    """The 2014 one-tower network on `devices` (K >= 2) of one process: data-parallel
    convolutions, model-parallel fully connected layers.

    Use `build_alexnet("owt", ..., tower_devices=[K devices])` rather than this class.
    """

    # The train step hands it the input pipeline's batch as it is (`call`'s model_input).
    splits_batch = True

    def __init__(
        self,
        num_classes=1000,
        image_size=224,
        width=1.0,
        dropout=0.5,
        devices=("/cpu:0", "/cpu:1"),
        init="paper",
        **kwargs,
    ):
        k = len(devices)
        super().__init__(num_classes, image_size, width, dropout, init, k, range(k), **kwargs)
        self.devices = list(devices)

    @property
    def input_dtype(self):
        # Keras would cast float inputs to the compute dtype: the lighting shift must reach
        # model_input in float32, as in the one-device step. Each layer casts for itself.
        return "float32"

    def _on_each(self, layers, inputs, **kwargs):
        """Device k applies layers[k] to inputs[k]."""
        out = []
        for device, layer, x in zip(self.devices, layers, inputs, strict=True):
            with _device_scope(device):
                out.append(layer(x, **kwargs))
        return out

    def _gathered(self, pieces, axis):
        """Every device's copy of the pieces, concatenated along `axis` on that device."""
        out = []
        for device in self.devices:
            with _device_scope(device):
                out.append(keras.ops.concatenate(pieces, axis=axis))
        return out

    def call(self, inputs, training=False, model_input=None):
        """Logits for a batch of images, or of the input pipeline's uint8 `inputs` with
        `model_input` (data.augment.model_input), which each device then applies to its part:
        the host splits the batch and sends each device its own images, in uint8."""
        k = len(self.devices)
        with tf.device("/cpu:0"):  # the host, where the runtime leaves the batches
            batch = tf.shape(tf.nest.flatten(inputs)[0])[0]
            sizes = _part_sizes(batch, k)
            split = [tf.split(t, sizes, num=k) for t in tf.nest.flatten(inputs)]
            parts = [tf.nest.pack_sequence_as(inputs, [s[i] for s in split]) for i in range(k)]
        features = []
        for device, part in zip(self.devices, parts, strict=True):
            with _device_scope(device):
                images = model_input(part) if model_input else part
                features.append(self._features(images, training))
        # The whole batch's features on every device; each computes its units of fc6, and
        # so on: fc7 and fc8 read all of the previous layer's units.
        h6 = self._on_each(self.shards("fc6"), self._gathered(features, axis=0))
        h6 = self._on_each([self.dropout7] * k, h6, training=training)
        h7 = self._on_each(self.shards("fc7"), self._gathered(h6, axis=-1))
        logits = self._on_each(self.shards("fc8"), self._gathered(h7, axis=-1))
        with _device_scope(self.devices[0]):
            return keras.ops.concatenate(logits, axis=-1)

    def get_config(self):
        return {**super().get_config(), "devices": self.devices}


@keras.saving.register_keras_serializable(package="alexnet_dist")
class RankShardOWT(SplitOWT):
    """One Horovod rank's part of the 2014 hybrid over the K ranks of a group
    (distribute/rank_group.py): the convolutions, run on its own images, and shard
    `group.index` of fc6, fc7 and fc8, computed for the images of every rank of the group.

    Use `build_alexnet("owt", ..., rank_group=runtime.rank_group)` rather than this class.
    """

    def __init__(self, num_classes, image_size, width, dropout, group, init, **kwargs):
        super().__init__(
            num_classes, image_size, width, dropout, init, group.size, [group.index], **kwargs
        )
        self.group = group

    def count_params(self):
        """The whole network's parameters, as other forms of it report them."""
        convs = sum(int(np.prod(v.shape)) for v in self.trainable_variables if "fc" not in v.path)
        fcs = sum(
            (shard.kernel.shape[0] + 1) * self.widths[stage]
            for stage in FC_LAYERS
            for shard in self.shards(stage)
        )
        return convs + fcs

    def call(self, images, training=False):
        group, (fc6,), (fc7,), (fc8,) = self.group, *(self.shards(s) for s in FC_LAYERS)
        x = fc6(group.gather_rows(self._features(images, training), "features"))
        x = group.gather_columns(self.dropout7(x, training=training), "fc6")
        x = group.gather_columns(fc7(tf.ensure_shape(x, [None, self.widths["fc6"]])), "fc7")
        logits = group.rows_home(fc8(tf.ensure_shape(x, [None, self.widths["fc7"]])),
                                 tf.shape(images)[0])  # fmt: skip
        return tf.ensure_shape(logits, [None, self.num_classes])


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


def gather(group: list) -> np.ndarray:
    """One variable of the one-device network from the variables that hold it."""
    return np.concatenate([np.asarray(v.numpy()) for v in group], axis=-1)


def scatter(group: list, value: np.ndarray) -> None:
    """Assigns a one-device variable's value to the variables that hold it."""
    sizes = [v.shape[-1] for v in group]
    if value.shape[:-1] != tuple(group[0].shape[:-1]) or value.shape[-1] != sum(sizes):
        raise ValueError(
            f"a value of shape {value.shape} does not split into {[tuple(v.shape) for v in group]}"
        )
    for v, piece in zip(group, np.split(value, np.cumsum(sizes)[:-1], axis=-1), strict=True):
        v.assign(piece)
