"""LARS: layer-wise adaptive rate scaling (You, Gitman and Ginsburg 2017), as a Keras 3 optimizer.

For each layer's weights w with gradient g (each variable is one layer's kernel or
bias; the towers' layers are separate layers, as in the paper):

    local rate  lambda = eta * ||w|| / (||g|| + beta * ||w||), or 1 if either norm is 0
    velocity    v <- m * v + gamma * lambda * (g + beta * w)
    weights     w <- w - v

eta is the trust coefficient (the paper's 0.001), beta the weight decay, m the
momentum, gamma the global rate from the schedule. Variables whose path matches
`exclude` (biases, batch normalisation's gamma and beta) get neither the
adaptation nor the decay: v <- m * v + gamma * g.

The weight decay is the optimizer's here, not the train step's: lambda needs the
norm of the gradient without it (training/state.py passes the step no decay). The
gradient is the one the runtime reduced, the sum over every replica, so the
norms, and the update, are the same on every replica.

A layer split into shards (the 2014 hybrid's fully connected layers, over the devices
of one process or the ranks of a group) is one layer: its norms are those of all its
shards, the squared norms summed over the devices here and, over ranks, all-reduced
within the group (`layers`, `sum_over_shards`: the model's `layer_shards()` and
`sum_over_shards`). So LARS on the hybrid is LARS on one device. Keras 3 has LAMB
(optim=lamb) but no LARS; Model Garden's and TF 1's LARS do not run on Keras 3.
"""

import re

import keras
import tensorflow as tf

from alexnet_dist.training.device_update import OnVariableDevice


class LARS(OnVariableDevice, keras.optimizers.Optimizer):
    """LARS with momentum; see the module docstring. With `skip_non_finite` (dynamic loss
    scaling), a variable whose gradient is not finite keeps its weights and velocity."""

    def __init__(
        self,
        learning_rate,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        trust_coefficient: float = 0.001,
        exclude: str = r"bias|gamma|beta",
        skip_non_finite: bool = False,
        layers: list[list] = (),
        sum_over_shards=None,
        name: str = "lars",
        **kwargs,
    ):
        """`layers`: the shards of each split layer held by this process, a list per layer;
        `sum_over_shards`: sums a tensor over the processes holding the other shards
        (None: every shard is here)."""
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._layers = [list(pieces) for pieces in layers]
        self._sum_over_shards = sum_over_shards
        self._norms = {}  # variable index -> (||w||, ||g||) of its layer, during apply
        self.momentum = momentum
        self.decay = weight_decay
        self.trust_coefficient = trust_coefficient
        self.exclude = exclude
        self.skip_non_finite = skip_non_finite
        self._excluded = re.compile(exclude) if exclude else None

    def excluded(self, variable) -> bool:
        """Whether `variable` is left out of the adaptation and the decay."""
        return bool(self._excluded and self._excluded.search(variable.path))

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.velocities = self.add_optimizer_variables(variables, "velocity")
        # By index: update_step gets the backend's variable, which has no Keras path.
        self._adapted = [not self.excluded(v) for v in variables]
        self._layer_of = {
            self._get_variable_index(v): i for i, pieces in enumerate(self._layers) for v in pieces
        }

    def velocity_of(self, variable):
        return self.velocities[self._get_variable_index(variable)]

    def slots_of(self, variable) -> list:
        """The optimizer's state for `variable`: its velocity."""
        return [self.velocity_of(variable)]

    def apply(self, grads, trainable_variables=None):
        if self._layers:
            self._norms = self._layer_norms(grads, trainable_variables or self._trainable_variables)
        try:
            return super().apply(grads, trainable_variables)
        finally:
            self._norms = {}

    def _layer_norms(self, grads, variables) -> dict:
        """(||w||, ||g||) of each split layer, for each of its shards' variable indexes."""
        squares = [[0.0, 0.0] for _ in self._layers]
        indexes = {}
        for g, v in zip(grads, variables, strict=True):
            index = self._get_variable_index(v)
            if index not in self._layer_of or g is None:
                continue
            layer = self._layer_of[index]
            value = v.value if isinstance(v, keras.Variable) else v
            with tf.device(value.device):  # each shard's squares where it lives
                w2 = tf.reduce_sum(tf.square(tf.cast(value, tf.float32)))
                g2 = tf.reduce_sum(tf.square(tf.cast(g, tf.float32)))
            squares[layer][0] += w2
            squares[layer][1] += g2
            indexes[index] = layer
        total = tf.stack([tf.convert_to_tensor(x, tf.float32) for pair in squares for x in pair])
        if self._sum_over_shards is not None:  # the other shards live on other ranks
            total = self._sum_over_shards(total)
        norms = tf.sqrt(tf.reshape(total, [len(self._layers), 2]))
        return {index: (norms[layer, 0], norms[layer, 1]) for index, layer in indexes.items()}

    def update_step(self, gradient, variable, learning_rate):
        velocity = self.local_copy(self.velocity_of(variable), variable)
        index = self._get_variable_index(variable)
        adapted = self._adapted[index]
        norms = self._norms.get(index)
        with tf.device(variable.device):
            if norms is not None:
                norms = tuple(tf.cast(n, variable.dtype) for n in norms)
            _lars_update(
                gradient, variable, velocity, tf.cast(learning_rate, variable.dtype),
                self.momentum, self.decay if adapted else 0.0,
                self.trust_coefficient if adapted else 0.0, self.skip_non_finite, norms,
            )  # fmt: skip

    def get_config(self):
        return {
            **super().get_config(),
            "momentum": self.momentum,
            "weight_decay": self.decay,
            "trust_coefficient": self.trust_coefficient,
            "exclude": self.exclude,
            "skip_non_finite": self.skip_non_finite,
        }  # the layers and their sum are the model's, given again when it is built


def local_rate(w, g, decay, trust_coefficient, norms=None):
    """lambda of the module docstring; 1 where either norm is 0, or with no trust coefficient
    (an excluded variable). `norms`: (||w||, ||g||) of the whole layer, when `w` and `g`
    are one shard of it."""
    if not trust_coefficient:
        return tf.ones([], w.dtype)
    w_norm, g_norm = norms if norms is not None else (tf.norm(w), tf.norm(g))
    ratio = trust_coefficient * w_norm / (g_norm + decay * w_norm)
    return tf.where((w_norm > 0) & (g_norm > 0), ratio, tf.ones_like(ratio))


@tf.function(jit_compile=True)
def _lars_update(gradient, variable, velocity, learning_rate, momentum, decay, trust, skip, norms):
    g = tf.cast(gradient, variable.dtype)
    w = tf.convert_to_tensor(variable)
    rate = learning_rate * local_rate(w, g, decay, trust, norms)
    new_velocity = momentum * velocity + rate * (g + decay * w)
    if skip:
        finite = tf.reduce_all(tf.math.is_finite(g))
        new_velocity = tf.where(finite, new_velocity, velocity)
        variable.assign_sub(tf.where(finite, new_velocity, tf.zeros_like(new_velocity)))
    else:
        variable.assign_sub(new_velocity)
    velocity.assign(new_velocity)
