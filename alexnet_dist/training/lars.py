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
norms, and the update, are the same on every replica. Keras 3 has LAMB
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
        name: str = "lars",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
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

    def velocity_of(self, variable):
        return self.velocities[self._get_variable_index(variable)]

    def update_step(self, gradient, variable, learning_rate):
        velocity = self.local_copy(self.velocity_of(variable), variable)
        adapted = self._adapted[self._get_variable_index(variable)]
        with tf.device(variable.device):
            _lars_update(
                gradient, variable, velocity, tf.cast(learning_rate, variable.dtype),
                self.momentum, self.decay if adapted else 0.0,
                self.trust_coefficient if adapted else 0.0, self.skip_non_finite,
            )  # fmt: skip

    def get_config(self):
        return {
            **super().get_config(),
            "momentum": self.momentum,
            "weight_decay": self.decay,
            "trust_coefficient": self.trust_coefficient,
            "exclude": self.exclude,
            "skip_non_finite": self.skip_non_finite,
        }


def local_rate(w, g, decay, trust_coefficient):
    """lambda of the module docstring; 1 where either norm is 0, or with no trust coefficient
    (an excluded variable)."""
    if not trust_coefficient:
        return tf.ones([], w.dtype)
    w_norm = tf.norm(w)
    g_norm = tf.norm(g)
    ratio = trust_coefficient * w_norm / (g_norm + decay * w_norm)
    return tf.where((w_norm > 0) & (g_norm > 0), ratio, tf.ones_like(ratio))


@tf.function(jit_compile=True)
def _lars_update(gradient, variable, velocity, learning_rate, momentum, decay, trust, skip):
    g = tf.cast(gradient, variable.dtype)
    w = tf.convert_to_tensor(variable)
    rate = learning_rate * local_rate(w, g, decay, trust)
    new_velocity = momentum * velocity + rate * (g + decay * w)
    if skip:
        finite = tf.reduce_all(tf.math.is_finite(g))
        new_velocity = tf.where(finite, new_velocity, velocity)
        variable.assign_sub(tf.where(finite, new_velocity, tf.zeros_like(new_velocity)))
    else:
        variable.assign_sub(new_velocity)
    velocity.assign(new_velocity)
