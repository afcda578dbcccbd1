"""Local response normalisation across channels (Krizhevsky et al. 2012, section 3.3)."""

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="alexnet_dist")
class LocalResponseNormalization(keras.layers.Layer):
    """b_i = a_i / (bias + alpha * sum_{|j - i| <= depth_radius} a_j^2) ** beta.

    The defaults are the paper's k=2, n=5, alpha=1e-4, beta=0.75. As in
    `tf.nn.local_response_normalization`, `alpha` multiplies the plain sum of
    squares: it is not divided by the window size (PyTorch's `LocalResponseNorm`
    divides it, so the same network needs alpha=5e-4 there).

    The windowed sum over channels is one matmul with a banded 0/1 matrix, so
    the layer is plain Keras and runs on every backend. It always computes in
    float32: under fp16 the squared activations overflow and the 1e-4 scale
    underflows. The output has the dtype of the input.

    Args:
        depth_radius: half-width of the channel window (n = 2 * depth_radius + 1).
        bias: the additive constant k.
        alpha: the scale of the sum of squares.
        beta: the exponent.
    """

    def __init__(self, depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75, **kwargs):
        super().__init__(**kwargs)
        if depth_radius < 0:
            raise ValueError(f"depth_radius must be >= 0, got {depth_radius!r}")
        self.depth_radius = int(depth_radius)
        self.bias = float(bias)
        self.alpha = float(alpha)
        self.beta = float(beta)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"{self.name}: the channel dimension must be known, got {input_shape}")
        index = np.arange(channels)
        band = np.abs(index[:, None] - index[None, :]) <= self.depth_radius
        # A constant, not a weight: nothing to train or checkpoint.
        self._band = band.astype("float32")

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        window_sum = ops.matmul(ops.square(x), ops.convert_to_tensor(self._band))
        scale = ops.power(self.bias + self.alpha * window_sum, -self.beta)
        return ops.cast(x * scale, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            depth_radius=self.depth_radius, bias=self.bias, alpha=self.alpha, beta=self.beta
        )
        return config
