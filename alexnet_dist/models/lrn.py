"""Local response normalisation across channels (Krizhevsky et al. 2012, section 3.3)."""

import functools

import keras
from keras import ops

from alexnet_dist.backend import xla

# keras.ops.custom_gradient works on TensorFlow and JAX; PyTorch uses its autodiff.
_CUSTOM_GRADIENT = keras.backend.backend() in ("tensorflow", "jax")


@keras.saving.register_keras_serializable(package="alexnet_dist")
class LocalResponseNormalization(keras.layers.Layer):
    """b_i = a_i / (bias + alpha * sum_{|j - i| <= depth_radius} a_j^2) ** beta.

    The defaults are the paper's k=2, n=5, alpha=1e-4, beta=0.75. As in
    `tf.nn.local_response_normalization`, `alpha` multiplies the plain sum of
    squares: it is not divided by the window size (PyTorch's `LocalResponseNorm`
    divides it, so the same network needs alpha=5e-4 there).

    It always computes in float32: under fp16 the squared activations overflow
    and the 1e-4 scale underflows. The output has the dtype of the input.

    Speed (#11): the layer is a handful of elementwise passes over conv1's and
    conv2's outputs, so its cost is memory traffic and the number of passes.
    The forward pass and the hand-written gradient are each one function that
    XLA compiles on TensorFlow (under JAX the step's jit does the same), so their
    passes fuse into two loops apiece: the zero-padded squares, then everything
    else. The window is the sum of 2n+1 slices of the padded squares, which
    fuses; the band matmul it replaces could not. (k + alpha*s)^-0.75 is
    r * sqrt(r) with r = rsqrt(.) (pow is 9x slower than rsqrt on CPU). The
    backward recomputes the window from the input instead of keeping float32
    intermediates: reading them back cost more than recomputing.

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
        if input_shape[-1] is None:
            raise ValueError(f"{self.name}: the channel dimension must be known, got {input_shape}")

    def call(self, inputs):
        forward, backward = _kernels(
            self.depth_radius, self.bias, self.alpha, self.beta, xla.enabled()
        )
        if not _CUSTOM_GRADIENT:
            return forward(inputs)

        @ops.custom_gradient
        def lrn(inputs):
            def grad(*args, upstream=None):
                return backward(inputs, args[0] if upstream is None else upstream)

            return forward(inputs), grad

        return lrn(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            depth_radius=self.depth_radius, bias=self.bias, alpha=self.alpha, beta=self.beta
        )
        return config


@functools.cache
def _kernels(radius, bias, alpha, beta, compile_xla=True):
    """The forward and backward functions for one set of hyperparameters, compiled once."""

    def window(v):
        # sum_{|j - i| <= radius} v_j: slices of one copy zero-padded on the channel axis.
        channels = v.shape[-1]
        padded = ops.pad(v, [(0, 0)] * (len(v.shape) - 1) + [(radius, radius)])
        total = padded[..., :channels]
        for offset in range(1, 2 * radius + 1):
            total = total + padded[..., offset : offset + channels]
        return total

    def scales(x):
        """t^-beta and t^-(beta+1), t = bias + alpha * window(x^2)."""
        t = bias + alpha * window(ops.square(x))
        if beta == 0.75:
            r = ops.rsqrt(t)
            scale = r * ops.sqrt(r)
            return scale, scale * r * r
        scale = ops.power(t, -beta)
        return scale, scale / t

    def lrn_forward(inputs):
        x = ops.cast(inputs, "float32")
        return ops.cast(x * scales(x)[0], inputs.dtype)

    def lrn_backward(inputs, upstream):
        # d b_i / d a_j = scale_i [i = j] - 2 alpha beta a_i a_j t_i^-(beta+1) over the
        # window, which is symmetric: the same window sums it back.
        x = ops.cast(inputs, "float32")
        dy = ops.cast(upstream, "float32")
        scale, scale_over_t = scales(x)
        window_sum = window(dy * x * scale_over_t)
        return ops.cast(dy * scale - (2.0 * alpha * beta) * x * window_sum, inputs.dtype)

    if compile_xla:
        # XLA fuses each function's elementwise passes; TensorFlow alone runs one
        # kernel per op.
        return xla.compiled(lrn_forward), xla.compiled(lrn_backward)
    return lrn_forward, lrn_backward
