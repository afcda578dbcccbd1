"""Local response normalisation across channels (Krizhevsky et al. 2012, section 3.3)."""

import keras
import numpy as np
from keras import ops

# keras.ops.custom_gradient works on TensorFlow and JAX; PyTorch uses its autodiff.
_CUSTOM_GRADIENT = keras.backend.backend() in ("tensorflow", "jax")


@keras.saving.register_keras_serializable(package="alexnet_dist")
class LocalResponseNormalization(keras.layers.Layer):
    """b_i = a_i / (bias + alpha * sum_{|j - i| <= depth_radius} a_j^2) ** beta.

    The defaults are the paper's k=2, n=5, alpha=1e-4, beta=0.75. As in
    `tf.nn.local_response_normalization`, `alpha` multiplies the plain sum of
    squares: it is not divided by the window size (PyTorch's `LocalResponseNorm`
    divides it, so the same network needs alpha=5e-4 there).

    The windowed sum over channels is one matmul with a banded 0/1 matrix. It
    always computes in float32: under fp16 the squared activations overflow and
    the 1e-4 scale underflows. The output has the dtype of the input.

    Speed (#11): the layer is memory-bound, each elementwise pass over conv1's
    output costs about as much as the band matmul. (k + alpha*s)^-beta is
    computed as r * sqrt(r) with r = rsqrt(.) when beta = 0.75 (pow is 9x
    slower than rsqrt on CPU), and the gradient is written by hand
    (keras.ops.custom_gradient): autodiff differentiated every op of the forward
    pass and took twice as many passes.

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
        band = (np.abs(index[:, None] - index[None, :]) <= self.depth_radius).astype("float32")
        # Constants, not weights: nothing to train or checkpoint. The forward pass's
        # scale alpha and the gradient's factor 2*alpha*beta are folded into them.
        self._band = self.alpha * band
        self._grad_band = 2.0 * self.alpha * self.beta * band

    def _scale(self, t):
        """t ** -beta, by square roots when beta is the paper's 0.75."""
        if self.beta == 0.75:
            r = ops.rsqrt(t)
            return r * ops.sqrt(r)
        return ops.power(t, -self.beta)

    def call(self, inputs):
        if not _CUSTOM_GRADIENT:
            x = ops.cast(inputs, "float32")
            t = self.bias + ops.matmul(ops.square(x), ops.convert_to_tensor(self._band))
            return ops.cast(x * self._scale(t), inputs.dtype)
        band = ops.convert_to_tensor(self._band)
        grad_band = ops.convert_to_tensor(self._grad_band)

        @ops.custom_gradient
        def lrn(inputs):
            x = ops.cast(inputs, "float32")
            t = self.bias + ops.matmul(ops.square(x), band)
            scale = self._scale(t)
            y = x * scale

            def grad(*args, upstream=None):
                # d b_i / d a_j = scale_i [i = j] - 2 alpha beta a_i a_j scale_i / t_i over
                # the window, which is symmetric: the same band sums it back.
                dy = ops.cast(args[0] if upstream is None else upstream, "float32")
                window = ops.matmul(dy * (y / t), grad_band)
                return ops.cast(dy * scale - x * window, inputs.dtype)

            return ops.cast(y, inputs.dtype), grad

        return lrn(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            depth_radius=self.depth_radius, bias=self.bias, alpha=self.alpha, beta=self.beta
        )
        return config
