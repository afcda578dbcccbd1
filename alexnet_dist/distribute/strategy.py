"""Backends built on a `tf.distribute.Strategy`."""

import tensorflow as tf

from alexnet_dist.distribute.runtime import Runtime


class StrategyRuntime(Runtime):
    """A Runtime that delegates to a tf.distribute strategy.

    With the default strategy (one process, one replica) this is the plain
    single-device path; variables are not pinned to a device, so a model can
    still place its towers on devices of its own (model parallelism).
    """

    def __init__(
        self, strategy: tf.distribute.Strategy, num_workers: int = 1, worker_index: int = 0
    ):
        self.strategy = strategy
        self._num_workers = num_workers
        self._worker_index = worker_index

    @property
    def num_replicas(self) -> int:
        return self.strategy.num_replicas_in_sync

    @property
    def num_workers(self) -> int:
        return self._num_workers

    @property
    def worker_index(self) -> int:
        return self._worker_index

    def scope(self):
        return self.strategy.scope()

    def distribute_dataset(self, dataset_fn):
        return self.strategy.distribute_datasets_from_function(dataset_fn)

    def run(self, fn, args):
        return self.strategy.run(fn, args=args)

    def reduce_sum(self, per_replica):
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)


def single() -> StrategyRuntime:
    """One process, one replica, on TensorFlow's default device."""
    return StrategyRuntime(tf.distribute.get_strategy())
