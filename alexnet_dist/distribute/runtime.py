"""The one interface the training loop uses for every distribution backend.

A backend answers: how many replicas and workers there are and which one this
process is; in which scope variables are created; how a per-worker dataset is
made; how a per-replica step is run; how its results are summed over replicas.
The loop calls only these, so it has no backend branches.
"""

import abc
from collections.abc import Callable
from typing import Any

import tensorflow as tf

from alexnet_dist.config import ConfigError
from alexnet_dist.data import tuning
from alexnet_dist.distribute.placement import ONE_DEVICE, Placement


class Runtime(abc.ABC):
    """A distribution backend as seen by the training loop."""

    # Where this process's replica holds its model: one device, the paper's towers on two
    # (distribute.devices_per_replica=2, or model.tower_devices in a one-replica run), or
    # the 2014 hybrid over devices or ranks.
    placement: Placement = ONE_DEVICE
    # Whether workers may leave and join during the run (elastic Horovod): then nothing
    # collective may run before `run`, where the state is synchronised.
    elastic = False

    @property
    @abc.abstractmethod
    def num_replicas(self) -> int:
        """Replicas over all workers; the global batch is split evenly between them."""

    @property
    @abc.abstractmethod
    def num_workers(self) -> int:
        """Processes, each with its own input pipeline."""

    @property
    @abc.abstractmethod
    def worker_index(self) -> int:
        """This process's index in [0, num_workers)."""

    @property
    def input_pipelines(self) -> int:
        """How many disjoint parts a training epoch is read in: one per worker; one per
        replica, whose K ranks each read their slice of it (the 2014 hybrid over ranks); or
        one stream that every worker reads its slice of (elastic Horovod)."""
        return self.num_workers

    @property
    def is_chief(self) -> bool:
        """Only the chief writes checkpoints, summaries and console progress."""
        return self.worker_index == 0

    @abc.abstractmethod
    def scope(self):
        """Context in which the model and the optimizer are created."""

    @abc.abstractmethod
    def distribute_dataset(
        self, dataset_fn: Callable[[tf.distribute.InputContext], tf.data.Dataset]
    ) -> Any:
        """Calls dataset_fn per worker with its InputContext; returns an iterable of batches."""

    @abc.abstractmethod
    def run_and_sum(self, fn: Callable, args: tuple) -> Any:
        """Runs fn(*args) on every replica, each on its part of the batch, and sums the results.

        fn returns a nest of scalars; every process gets their sum over all replicas
        of all workers. Call it inside a tf.function.
        """

    @abc.abstractmethod
    def all_reduce_sum(self, value: tf.Tensor) -> tf.Tensor:
        """Inside a replica's step: the sum of `value` over all replicas, on every replica."""

    # tf.distribute strategies sum gradients over replicas inside
    # `optimizer.apply_gradients`; Horovod does not, so its step sums them first.
    optimizer_sums_gradients = True

    def sum_gradients(self, grads: list, variables: list) -> list:
        """Inside a replica's step: each gradient summed over replicas (the all-reduce of a step).

        By default, what a strategy's `apply_gradients` does: one `all_reduce_sum`.
        """
        return self.all_reduce_sum(grads)

    def summed_variables(self, variables: list) -> list:
        """The variables whose gradients `sum_gradients` sums across replicas: all of them,
        but for the 2014 hybrid over one replica's ranks, whose FC shards no one shares."""
        return list(variables)

    def batches_in_gradient(self, variable) -> int:
        """How many replicas' batches this replica's gradient of `variable` already sums: 1,
        or K for a fully connected shard of the 2014 hybrid over K ranks, which is computed
        for the images of every rank of its group. The step scales its weight decay share."""
        return 1

    def reduce_gradients(self, grads: list, variables: list) -> list:
        """The gradients the step hands to the optimizer: summed here unless the optimizer sums."""
        return grads if self.optimizer_sums_gradients else self.sum_gradients(grads, variables)

    def broadcast_variables(self, variables: list) -> None:
        """Makes every process hold rank 0's values (a strategy keeps them in sync itself)."""
        return None

    def prepare(self, variables: list, rng_states: list) -> None:
        """Before the first step: the same state everywhere (`broadcast_variables`), but each
        replica its own dropout masks (`offset_by_replica`)."""
        self.broadcast_variables(variables)
        self.offset_by_replica(rng_states)

    def run(self, train: Callable[[], Any]) -> Any:
        """Runs the training loop `train()`; elastic Horovod runs it again after a rank is
        lost or added, from the last commit."""
        return train()

    def step_done(self, step: int) -> None:  # noqa: B027
        """After each training step (elastic Horovod commits the state every N)."""

    @abc.abstractmethod
    def offset_by_replica(self, variables: list) -> None:
        """Adds [replica index, 0] to each int seed state, on each replica.

        Keras keeps a layer's random state (dropout's SeedGenerator) in a variable
        that every replica starts with the same value: every replica would draw
        the same dropout masks. After this, replica r draws from key + r. Replica
        0 keeps the checkpointed value, so resume stays exact.
        """

    def first_replica(self, value: Any) -> Any:
        """This process's first replica's part of a distributed value (for summaries)."""
        return value

    def per_replica_batch(self, global_batch: int, key: str) -> int:
        """The per-replica share of a global batch; an error naming `key` if it does not divide."""
        if global_batch % self.num_replicas:
            raise ConfigError(
                f"{key}={global_batch} does not divide evenly over {self.num_replicas} replicas"
            )
        return global_batch // self.num_replicas


def as_iterated(dataset_fn: Callable) -> Callable:
    """dataset_fn, with tf.data's autotuning loop off on the dataset a runtime iterates,
    unless the input asked for it (`data.tuning.without_autotune_loop` says why)."""
    return lambda ctx: tuning.without_autotune_loop(dataset_fn(ctx))
