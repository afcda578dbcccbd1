"""The 2014 hybrid placed: the one-tower network over K devices of one process (`HybridOWT`)
or over K Horovod ranks (`RankShardOWT`), as "One weird trick" (Krizhevsky 2014) spreads it.

Both hold models/owt_shards.py's layers: every device (rank) runs conv1-conv5 on
its own 1/K of the batch, and holds 1/K of the units of fc6, fc7 and fc8, which
it computes for the whole batch. The exchanges are all-gathers of activations,
and autodiff (or the collectives' gradients, distribute/rank_group.py) makes the
reverse exchanges:

- the pooled conv features of every device's examples, gathered on every device
  (B x 9216 at full size); backward, each device's share of the feature
  gradients goes back to the device that owns those examples, where the K
  pieces are summed (a reduce-scatter);
- fc6's and fc7's units, gathered on every device, since fc7 and fc8 read all of
  the previous layer;
- fc8's logits, gathered on the first device (over ranks: each rank's rows sent
  home), where the step's loss reads them.

Over devices, the exchanges are concatenations under each device's scope
(TensorFlow sends each piece once per device that reads it). The batch is split
on the host: each device receives its own images, in uint8 as the input pipeline
ships them, and converts them itself (data.augment's model_input), as in data
parallelism. Converting the batch on the first device and splitting it there
would send (K-1)/K of it onwards at 4 bytes a value: 539 MB per step at K = 8
and 128 images per device, more than the all-reduce this scheme saves. The conv
weights are one copy on the first device, read by every device each step; their
K gradients are summed there.

With one batch of B images per step in both parts, K steps of the hybrid are K
steps of the one-device network on the same B images, up to float rounding
(tests/distribute/test_owt_hybrid.py). Dropout draws other masks, since each
device draws its own.
"""

import keras
import numpy as np
import tensorflow as tf

from alexnet_dist.config import ModelConfig
from alexnet_dist.models.layers import device_scope
from alexnet_dist.models.owt_shards import FC_LAYERS, SplitOWT


def _part_sizes(batch: tf.Tensor, parts: int) -> tf.Tensor:
    """The batch split over the devices, the first ones taking one image more where it does
    not divide (an evaluation's last batch)."""
    k = tf.range(parts)
    return batch // parts + tf.cast(k < batch % parts, batch.dtype)


class HybridOWT(SplitOWT):
    """The 2014 one-tower network on `devices` (K >= 2) of one process: data-parallel
    convolutions, model-parallel fully connected layers.

    Use `distribute.placement.build_model` rather than this class: it builds it and gives
    it the one-device network's initial weights.
    """

    # The train step hands it the input pipeline's batch as it is (`call`'s model_input).
    splits_batch = True

    def __init__(self, cfg: ModelConfig, num_classes: int, devices: list[str], **kwargs):
        k = len(devices)
        super().__init__(num_classes, cfg.image_size, cfg.width, cfg.dropout, cfg.init, k,
                         range(k), **kwargs)  # fmt: skip
        self.model_config = cfg
        self.devices = list(devices)
        # Built by running its layers eagerly, each under its device's scope, so that
        # their variables are created there.
        self.call(keras.ops.zeros((k, cfg.image_size, cfg.image_size, 3)))
        self(keras.ops.zeros((k, cfg.image_size, cfg.image_size, 3)))

    @property
    def input_dtype(self):
        # Keras would cast float inputs to the compute dtype: the lighting shift must reach
        # model_input in float32, as in the one-device step. Each layer casts for itself.
        return "float32"

    def _on_each(self, layers, inputs, **kwargs):
        """Device k applies layers[k] to inputs[k]."""
        out = []
        for device, layer, x in zip(self.devices, layers, inputs, strict=True):
            with device_scope(device):
                out.append(layer(x, **kwargs))
        return out

    def _gathered(self, pieces, axis):
        """Every device's copy of the pieces, concatenated along `axis` on that device."""
        out = []
        for device in self.devices:
            with device_scope(device):
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
            with device_scope(device):
                images = model_input(part) if model_input else part
                features.append(self.features(images, training))
        # The whole batch's features on every device; each computes its units of fc6, and
        # so on: fc7 and fc8 read all of the previous layer's units.
        h6 = self._on_each(self.shards("fc6"), self._gathered(features, axis=0))
        h6 = self._on_each([self.dropout7] * k, h6, training=training)
        h7 = self._on_each(self.shards("fc7"), self._gathered(h6, axis=-1))
        logits = self._on_each(self.shards("fc8"), self._gathered(h7, axis=-1))
        with device_scope(self.devices[0]):
            return keras.ops.concatenate(logits, axis=-1)


class RankShardOWT(SplitOWT):
    """One Horovod rank's part of the 2014 hybrid over the K ranks of a group
    (distribute/rank_group.py): the convolutions, run on its own images, and shard
    `group.index` of fc6, fc7 and fc8, computed for the images of every rank of the group.

    Use `distribute.placement.build_model` rather than this class.
    """

    def __init__(self, cfg: ModelConfig, num_classes: int, group, **kwargs):
        super().__init__(num_classes, cfg.image_size, cfg.width, cfg.dropout, cfg.init,
                         group.size, [group.index], **kwargs)  # fmt: skip
        self.model_config = cfg
        self.group = group
        # Every rank of the group builds at once: the call's exchanges are collectives.
        self.call(keras.ops.zeros((1, cfg.image_size, cfg.image_size, 3)))
        self(keras.ops.zeros((1, cfg.image_size, cfg.image_size, 3)))
        # Its fully connected shards are its own: not broadcast, not summed within the group.
        group.hold([v for stage in FC_LAYERS for v in self.shards(stage)[0].weights])

    def sum_over_shards(self, x: tf.Tensor) -> tf.Tensor:
        """`x` summed over the ranks of this group, which hold the other shards."""
        return self.group.sum(x, "layer_norms")

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
        x = fc6(group.gather_rows(self.features(images, training), "features"))
        x = group.gather_columns(self.dropout7(x, training=training), "fc6")
        x = group.gather_columns(fc7(tf.ensure_shape(x, [None, self.widths["fc6"]])), "fc7")
        logits = group.rows_home(fc8(tf.ensure_shape(x, [None, self.widths["fc7"]])),
                                 tf.shape(images)[0])  # fmt: skip
        return tf.ensure_shape(logits, [None, self.num_classes])
