"""Batch normalisation whose statistics can span replicas, for AlexNet-BN.

Keras's own `synchronized=True` sums the moments over a tf.distribute strategy's
replicas (MirroredStrategy, MultiWorkerMirroredStrategy). Horovod ranks run no
strategy: for them the layer takes `replica_sum`, a function that sums a tensor over
the ranks (given by the distribution runtime: models hold no distribution code), and
computes the moments of the global batch from the summed sums, counts and squares.
In inference (evaluation, export, prediction) the layer is Keras's.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="alexnet_dist")
class ReplicaBatchNorm(keras.layers.BatchNormalization):
    """BatchNormalization over the channels; with `replica_sum`, its training statistics are
    those of the batch of every replica. `replica_sum` is not saved: a loaded model
    normalises with its moving statistics, or its own batch's."""

    def __init__(self, replica_sum=None, **kwargs):
        super().__init__(**kwargs)
        self.replica_sum = replica_sum

    def _moments(self, inputs, mask):
        if self.replica_sum is None or mask is not None:
            return super()._moments(inputs, mask)
        axes = [i for i in range(len(inputs.shape)) if i != self.axis % len(inputs.shape)]
        x = ops.cast(inputs, "float32")
        channels = x.shape[self.axis]
        count = ops.cast(ops.size(x), "float32") / channels
        sums = ops.concatenate(
            [ops.sum(x, axis=axes), ops.sum(ops.square(x), axis=axes), ops.reshape(count, [1])]
        )
        sums = self.replica_sum(sums)
        total = sums[2 * channels]
        mean = sums[:channels] / total
        variance = ops.maximum(sums[channels : 2 * channels] / total - ops.square(mean), 0.0)
        return mean, variance
