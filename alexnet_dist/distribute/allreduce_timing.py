"""How long the gradient all-reduce takes on its own, measured through the runtime.

A multi-replica run logs this once at start, next to the step time the
training log reports, so that the share of each step spent summing gradients
is visible on any cluster: a step of 200 ms with an all-reduce of 150 ms is
bound by the interconnect, not by the accelerator. The figure is the
collective alone, on gradient-shaped tensors, with nothing else running; in
training it may overlap with the backward pass, or compete with it for cores.
"""

import dataclasses
import statistics
import time

import tensorflow as tf

from alexnet_dist.distribute.runtime import Runtime


@dataclasses.dataclass(frozen=True)
class AllReduceTiming:
    num_bytes: int  # gradient bytes each replica contributes per step
    seconds: float  # median over the timed repeats
    replicas: int

    def describe(self) -> str:
        # Algorithm bandwidth: bytes summed per second as the caller sees it (NCCL's "algbw").
        rate = self.num_bytes / self.seconds / 1e9
        return (
            f"gradient all-reduce over {self.replicas} replicas: {self.num_bytes / 1e6:.1f} MB "
            f"in {1e3 * self.seconds:.1f} ms ({rate:.2f} GB/s)"
        )


def time_all_reduce(runtime: Runtime, variables: list, repeats: int = 10) -> AllReduceTiming:
    """Times the runtime's sum of gradients shaped like `variables` (median of `repeats`,
    after one untimed call that sets the collective up), of those it sums across replicas.
    Every process must call it."""
    variables = runtime.summed_variables(variables)
    shapes = [(tuple(v.shape), tf.as_dtype(v.dtype)) for v in variables]

    def replica(fill):
        # Filled from an argument, not constants that graph optimisation could fold.
        grads = [tf.fill(shape, tf.cast(fill, dtype)) for shape, dtype in shapes]
        summed = runtime.sum_gradients(grads, variables)
        return {"check": tf.add_n([tf.reduce_sum(g) for g in summed])}

    @tf.function
    def reduce(fill):
        # run_and_sum runs `replica` on every replica, as the train step does.
        return runtime.run_and_sum(replica, (fill,))

    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        float(reduce(tf.constant(float(i)))["check"])
        if i:
            times.append(time.perf_counter() - start)
    num_bytes = sum(tf.TensorShape(s).num_elements() * d.size for s, d in shapes)
    return AllReduceTiming(num_bytes, statistics.median(times), runtime.num_replicas)
