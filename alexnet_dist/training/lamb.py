"""LAMB (You et al. 2019) as Keras 3 computes it, on layers split into shards too.

For each variable w with gradient g, at step t (beta_1, beta_2, epsilon as Keras's Lamb):

    decay       w <- w - gamma * wd * w         (decoupled, as Keras applies weight_decay;
                                                 not on variables matching `exclude`)
    moments     m <- beta_1 m + (1 - beta_1) g,   v <- beta_2 v + (1 - beta_2) g^2
    update      u = (m / (1 - beta_1^t)) / (sqrt(v / (1 - beta_2^t)) + epsilon)
    trust ratio r = ||w|| / ||u||, or 1 if either norm is 0
    weights     w <- w - gamma * r * u

Keras's own Lamb takes ||w|| and ||u|| of each variable. A fully connected layer of the
2014 hybrid split into shards (over the devices of one process or the ranks of a group)
is one layer: its norms are over all its shards, the squared norms summed over the
devices here and all-reduced within the group, as LARS does (training/lars.py). That
needs every shard's u before any shard's weights change, so `apply` computes the
moments and updates of the split layers first, then their norms, and `update_step`
assigns them. Everything else is Keras's Lamb to the last operation (tests/training
compare the two).
"""

import re

import keras
import tensorflow as tf

from alexnet_dist.training.device_update import OnVariableDevice


class Lamb(OnVariableDevice, keras.optimizers.Optimizer):
    """LAMB; see the module docstring. With `skip_non_finite` (dynamic loss scaling), a
    variable whose gradient is not finite is left as it was: weights, decay and moments."""

    def __init__(
        self,
        learning_rate,
        weight_decay: float = 0.0,
        exclude: str = r"bias|gamma|beta",
        skip_non_finite: bool = False,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-6,
        layers: list[list] = (),
        sum_over_shards=None,
        name: str = "lamb",
        **kwargs,
    ):
        """`layers`: the shards of each split layer held by this process, a list per layer;
        `sum_over_shards`: sums a tensor over the processes holding the other shards
        (None: every shard is here)."""
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.decay = weight_decay
        self.exclude = exclude
        self._excluded = re.compile(exclude) if exclude else None
        self.skip_non_finite = skip_non_finite
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self._layers = [list(pieces) for pieces in layers]
        self._sum_over_shards = sum_over_shards
        self._prepared = {}  # variable index -> (m, v, u, ||w||, ||u||) of a shard, in apply

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._momentums, self._velocities = self.add_optimizer_variables(
            variables, ["momentum", "velocity"]
        )
        # By index: update_step gets the backend's variable, which has no Keras path.
        self._decayed = [not (self._excluded and self._excluded.search(v.path)) for v in variables]
        self._layer_of = {
            self._get_variable_index(v): i for i, pieces in enumerate(self._layers) for v in pieces
        }

    def slots_of(self, variable) -> list:
        """The optimizer's state for `variable`: its first and second moments."""
        index = self._get_variable_index(variable)
        return [self._momentums[index], self._velocities[index]]

    def apply(self, grads, trainable_variables=None):
        if self._layers:
            self._prepared = self._prepare_split_layers(
                grads, trainable_variables or self._trainable_variables
            )
        try:
            return super().apply(grads, trainable_variables)
        finally:
            self._prepared = {}

    def _moments(self, gradient, variable):
        """(m, v, u) of `variable` for this step, nothing assigned yet."""
        index = self._get_variable_index(variable)
        m = self.local_copy(self._momentums[index], variable)
        v = self.local_copy(self._velocities[index], variable)
        with tf.device(variable.device):
            return _moments(
                tf.cast(gradient, variable.dtype), tf.convert_to_tensor(m),
                tf.convert_to_tensor(v), tf.cast(self.iterations + 1, variable.dtype),
                self.beta_1, self.beta_2, self.epsilon,
            )  # fmt: skip

    def _decay_factor(self, index, variable, learning_rate):
        """1 - gamma * wd for a decayed variable, 1 for an excluded one."""
        decay = self.decay if self._decayed[index] else 0.0
        return 1.0 - tf.cast(learning_rate, variable.dtype) * decay

    def _prepare_split_layers(self, grads, variables) -> dict:
        """Each shard's moments and update, and its layer's (||w||, ||u||) over all shards."""
        squares = [[0.0, 0.0] for _ in self._layers]
        shards = {}
        lr = self._get_current_learning_rate()
        for g, var in zip(grads, variables, strict=True):
            index = self._get_variable_index(var)
            if index not in self._layer_of or g is None:
                continue
            value = var.value if isinstance(var, keras.Variable) else var
            m, v, u = self._moments(g, value)
            layer = self._layer_of[index]
            with tf.device(value.device):  # each shard's squares where it lives
                # ||w|| after the decoupled decay, which scales the whole shard.
                w = tf.cast(value * self._decay_factor(index, value, lr), tf.float32)
                squares[layer][0] += tf.reduce_sum(tf.square(w))
                squares[layer][1] += tf.reduce_sum(tf.square(tf.cast(u, tf.float32)))
            shards[index] = (layer, m, v, u)
        total = tf.stack([tf.convert_to_tensor(x, tf.float32) for pair in squares for x in pair])
        if self._sum_over_shards is not None:  # the other shards live on other ranks
            total = self._sum_over_shards(total)
        norms = tf.sqrt(tf.reshape(total, [len(self._layers), 2]))
        return {i: (m, v, u, norms[layer, 0], norms[layer, 1])
                for i, (layer, m, v, u) in shards.items()}  # fmt: skip

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        m_slot = self.local_copy(self._momentums[index], variable)
        v_slot = self.local_copy(self._velocities[index], variable)
        if index in self._prepared:
            m, v, u, *norms = self._prepared[index]
        else:  # a layer of its own: its norms are its own, as Keras takes them
            m, v, u = self._moments(gradient, variable)
            norms = None
        with tf.device(variable.device):
            _assign(
                variable, m_slot, v_slot, m, v, u, tf.cast(learning_rate, variable.dtype),
                self._decay_factor(index, variable, learning_rate), norms,
                tf.reduce_all(tf.math.is_finite(gradient)) if self.skip_non_finite else None,
            )  # fmt: skip

    def get_config(self):
        return {
            **super().get_config(),
            "weight_decay": self.decay,
            "exclude": self.exclude,
            "skip_non_finite": self.skip_non_finite,
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
        }  # the layers and their sum are the model's, given again when it is built


@tf.function(jit_compile=True)
def _moments(g, m, v, step, beta_1, beta_2, epsilon):
    """Keras's Lamb arithmetic: the new moments and the bias-corrected update."""
    m = m + (g - m) * (1 - beta_1)
    v = v + (tf.square(g) - v) * (1 - beta_2)
    m_hat = m / (1.0 - tf.pow(tf.cast(beta_1, g.dtype), step))
    v_hat = v / (1.0 - tf.pow(tf.cast(beta_2, g.dtype), step))
    return m, v, m_hat / (tf.sqrt(v_hat) + epsilon)


@tf.function(jit_compile=True)
def _assign(variable, m_slot, v_slot, m, v, u, lr, decay_factor, norms, finite):
    """w <- w * decay_factor - lr * r * u, and the moments; nothing where `finite` is false."""
    w = tf.convert_to_tensor(variable) * decay_factor
    w_norm, u_norm = norms if norms is not None else (tf.norm(w), tf.norm(u))
    w_norm, u_norm = tf.cast(w_norm, w.dtype), tf.cast(u_norm, w.dtype)
    ratio = tf.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, tf.ones_like(w_norm))
    new_w = w - ratio * lr * u
    if finite is not None:
        m = tf.where(finite, m, m_slot)
        v = tf.where(finite, v, v_slot)
        new_w = tf.where(finite, new_w, variable)
    m_slot.assign(m)
    v_slot.assign(v)
    variable.assign(new_w)
