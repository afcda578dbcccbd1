"""The per-replica train and eval steps, and the tf.functions that run them on every replica.

A step is written for one replica and returns sums (loss, correct top-1/top-5,
example count), so that summing over replicas gives exact global figures
whatever the number of replicas or the size of the last evaluation batch.
"""

from collections.abc import Callable

import keras
import tensorflow as tf

from alexnet_dist.distribute import Runtime

Batch = tuple[tf.Tensor, tf.Tensor]


def decayed_variables(model: keras.Model) -> list:
    """The paper decays the weights, not the biases: every trainable variable with ndim > 1."""
    return [v for v in model.trainable_variables if len(v.shape) > 1]


def _sums(labels, logits) -> dict[str, tf.Tensor]:
    logits = tf.cast(logits, tf.float32)
    per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    k = min(5, logits.shape[-1])
    return {
        "loss_sum": tf.reduce_sum(per_example),
        "top1": tf.reduce_sum(tf.cast(tf.math.in_top_k(labels, logits, 1), tf.float32)),
        "top5": tf.reduce_sum(tf.cast(tf.math.in_top_k(labels, logits, k), tf.float32)),
        "count": tf.cast(tf.shape(labels)[0], tf.float32),
    }


def make_train_step(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    runtime: Runtime,
    global_batch: int,
    weight_decay: float,
    jit_compile: bool = False,
    stop_flag: tf.Variable | None = None,
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
    """
    variables = model.trainable_variables
    decayed = {id(v) for v in decayed_variables(model)}
    decay = weight_decay / runtime.num_replicas

    def forward_backward(images, labels):
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            sums = _sums(labels, logits)
            loss = sums["loss_sum"] / global_batch
        pairs = zip(tape.gradient(loss, variables), variables, strict=True)
        return [g + decay * v if id(v) in decayed else g for g, v in pairs], sums

    if jit_compile:
        forward_backward = tf.function(forward_backward, jit_compile=True)

    def replica_step(images, labels):
        grads, sums = forward_backward(images, labels)
        optimizer.apply_gradients(zip(runtime.reduce_gradients(grads), variables, strict=True))
        if stop_flag is not None:
            sums["stop"] = tf.identity(stop_flag)
        return sums

    @tf.function
    def train_step(batch: Batch):
        return runtime.run_and_sum(replica_step, batch)

    return train_step


def make_eval_step(model: keras.Model, runtime: Runtime) -> Callable[[Batch], dict[str, tf.Tensor]]:
    """Returns a tf.function that evaluates one batch and returns global sums."""

    def replica_step(images, labels):
        return _sums(labels, model(images, training=False))

    # The last validation batch is smaller: one extra trace, not one per shape.
    @tf.function(reduce_retracing=True)
    def eval_step(batch: Batch):
        return runtime.run_and_sum(replica_step, batch)

    return eval_step
