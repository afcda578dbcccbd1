"""The per-replica train and eval steps, and the tf.functions that run them on every replica.

A step is written for one replica and returns sums (loss, correct top-1/top-5,
example count), so that summing over replicas gives exact global figures
whatever the number of replicas or the size of the last evaluation batch.
"""

from collections.abc import Callable

import keras
import tensorflow as tf

from alexnet_dist.distribute.runtime import Runtime
from alexnet_dist.training.loss_scale import LossScale

Batch = tuple[tf.Tensor | dict[str, tf.Tensor], tf.Tensor]
# Turns a batch's inputs into the network's input: data.augment.model_input (uint8
# pixels -> normalised float32, inside the step, on the accelerator), with the
# data's mean and std; None when the batches already hold the network's input.
ModelInput = Callable[[dict[str, tf.Tensor]], tf.Tensor] | None


def decayed_variables(model: keras.Model) -> list:
    """The paper decays the weights, not the biases: every trainable variable with ndim > 1."""
    return [v for v in model.trainable_variables if len(v.shape) > 1]


def _sums(labels, log_probs, label_smoothing: float = 0.0) -> dict[str, tf.Tensor]:
    """Summed loss, top-1 and top-5 hits, and count, from float32 log-probabilities."""
    per_example = -tf.gather(log_probs, labels, batch_dims=1)
    if label_smoothing:  # cross-entropy with (1 - e) on the label and e spread over all classes
        uniform = -tf.reduce_mean(log_probs, axis=-1)
        per_example = (1.0 - label_smoothing) * per_example + label_smoothing * uniform
    k = min(5, log_probs.shape[-1])
    return {
        "loss_sum": tf.reduce_sum(per_example),
        "top1": tf.reduce_sum(tf.cast(tf.math.in_top_k(labels, log_probs, 1), tf.float32)),
        "top5": tf.reduce_sum(tf.cast(tf.math.in_top_k(labels, log_probs, k), tf.float32)),
        "count": tf.cast(tf.shape(labels)[0], tf.float32),
    }


def _by_variable(fn: Callable, grads: list, variables: list) -> list:
    """[fn(g, v)] for each gradient and its variable, computed on the variable's device.

    TensorFlow would put an op without a device on the first one: with the towers
    on two devices, every tower-b gradient would cross over and back.
    """
    out = []
    for g, v in zip(grads, variables, strict=True):
        with tf.device(v.value.device):
            out.append(fn(g, v))
    return out


def _logits(model: keras.Model, inputs, model_input: ModelInput) -> tf.Tensor:
    """The model's training logits for a batch. A model that splits the batch over its
    devices (distribute/owt_hybrid.py) takes the pipeline's inputs as they are and converts
    each device's part on that device; any other takes the converted batch."""
    if model_input is not None and getattr(model, "splits_batch", False):
        return model(inputs, training=True, model_input=model_input)
    return model(model_input(inputs) if model_input else inputs, training=True)


def _batch_share(labels: tf.Tensor, global_batch: int) -> tf.Tensor:
    """This replica's fraction of the global batch."""
    return tf.cast(tf.shape(labels)[0], tf.float32) / global_batch


def make_train_step(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    runtime: Runtime,
    global_batch: int,
    weight_decay: float,
    jit_compile: bool = False,
    stop_flag: tf.Variable | None = None,
    label_smoothing: float = 0.0,
    loss_scale: LossScale | None = None,
    model_input: ModelInput = None,
) -> Callable[[Batch], dict[str, tf.Tensor]]:
    """Returns a tf.function that trains on one global batch and returns global sums.

    The loss of each replica is its summed cross-entropy over the *global* batch
    size, so that gradients summed over replicas are the gradient of the global
    mean. Weight decay is the paper's: wd * w added to the gradient of every
    weight (the momentum then carries it, as in the paper's update rule), split
    over replicas for the same reason.

    With `jit_compile`, XLA compiles the forward and backward pass of each replica;
    the gradient reduction and the update stay outside it, where tf.distribute
    and Horovod do their all-reduce. `stop_flag` (a host variable, 1.0 when a
    preemption signal arrived) is summed with the metrics as "stop", so that all
    workers learn of a signal at the same step.

    With `loss_scale` (mixed_float16) the loss is scaled before the backward pass
    and the gradients unscaled after it. Whether any gradient on any replica is
    not finite is all-reduced first; if so, every gradient is made NaN, so that
    the optimizer (a SkippingSGD) leaves every variable and momentum as it was on
    every replica, and the scale is lowered. "skipped" is 1.0 for such a step.
    Without loss scaling, "nonfinite" counts the replicas whose gradients were
    not finite, so that the loop can stop before it saves the damaged weights.
    """
    variables = model.trainable_variables
    decayed = {id(v) for v in decayed_variables(model)}

    def forward_backward(inputs, labels):
        # Each replica adds its share of the decay, in proportion to its share of the
        # global batch: the shares sum to wd * w even when they are unequal (elastic
        # Horovod splits the batch over whatever ranks there are).
        decay = weight_decay * _batch_share(labels, global_batch)
        log_probs = tf.nn.log_softmax(tf.cast(_logits(model, inputs, model_input), tf.float32))
        sums = _sums(labels, log_probs, label_smoothing)
        loss = sums["loss_sum"] / global_batch
        if loss_scale is not None:
            loss = loss * loss_scale.scale
        # tf.gradients, not a GradientTape: it puts each gradient op on the device of
        # the op it differentiates, so with the towers on two devices tower b's
        # backward pass runs on tower b's device (a tape's would all land on one).
        grads = tf.gradients(loss, [v.value for v in variables])

        def unscale_and_decay(g, v):
            if loss_scale is not None:
                g = g / loss_scale.scale
            share = runtime.batches_in_gradient(v)
            return g + (decay * share) * v if id(v) in decayed else g

        return _by_variable(unscale_and_decay, grads, variables), sums

    if jit_compile:
        forward_backward = tf.function(forward_backward, jit_compile=True)

    def replica_step(inputs, labels):
        grads, sums = forward_backward(inputs, labels)
        finite = _by_variable(lambda g, v: tf.reduce_all(tf.math.is_finite(g)), grads, variables)
        finite = tf.reduce_all(finite)
        if loss_scale is None:
            # Reported, not acted on: the loop stops before anything is saved.
            sums["nonfinite"] = 1.0 - tf.cast(finite, tf.float32)
        else:
            overflows = runtime.all_reduce_sum(1.0 - tf.cast(finite, tf.float32))
            poison = tf.where(overflows > 0, float("nan"), 0.0)
            grads = _by_variable(lambda g, v: g + poison, grads, variables)
            # Summed over replicas: 1.0.
            sums["skipped"] = tf.cast(overflows > 0, tf.float32) * _batch_share(
                labels, global_batch
            )
        grads = runtime.reduce_gradients(grads, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        if stop_flag is not None:
            sums["stop"] = tf.identity(stop_flag)
        return sums

    @tf.function
    def train_step(batch: Batch):
        sums = runtime.run_and_sum(replica_step, batch)
        if loss_scale is not None:
            loss_scale.update(sums["skipped"] < 0.5)
        return sums

    return train_step


def predict_log_probs(model: keras.Model, images: tf.Tensor) -> tf.Tensor:
    """Log class probabilities; for multi-crop input (batch, crops, h, w, 3) the paper's
    rule: the softmax averaged over the crops of each image."""
    if images.shape.rank == 4:
        return tf.nn.log_softmax(tf.cast(model(images, training=False), tf.float32))
    shape = tf.shape(images)
    flat = tf.reshape(images, tf.concat([[-1], shape[2:]], axis=0))
    probs = tf.nn.softmax(tf.cast(model(flat, training=False), tf.float32))
    probs = tf.reshape(probs, [shape[0], shape[1], -1])
    return tf.math.log(tf.reduce_mean(probs, axis=1))


def make_eval_step(
    model: keras.Model, runtime: Runtime, model_input: ModelInput = None
) -> Callable[[Batch], dict[str, tf.Tensor]]:
    """Returns a tf.function that evaluates one batch (single or multi-crop): global sums."""

    def replica_step(inputs, labels):
        images = model_input(inputs) if model_input else inputs
        return _sums(labels, predict_log_probs(model, images))

    # The last validation batch is smaller: one extra trace, not one per shape.
    @tf.function(reduce_retracing=True)
    def eval_step(batch: Batch):
        return runtime.run_and_sum(replica_step, batch)

    return eval_step
