"""Elastic Horovod: training goes on when ranks leave, and takes in ranks that join.

Started by `horovodrun --min-np M --max-np N --host-discovery-script S` (Gloo).
The training state (weights, momenta, step, epoch, dropout's random state, the
plateau schedule and the loss scale: everything a checkpoint holds) is
committed to host memory every `distribute.commit_every_steps` steps. When a
rank dies, the collective of the next step fails on the others; they roll back
to the last commit, Horovod forms a new ring of the survivors, and training
goes on from there. When the discovery script lists a host again, Horovod
starts a rank on it, the others stop at their next commit, and every rank
takes rank 0's state before going on.

The global batch stays `data.global_batch_size`, split over the ranks there
are (`alexnet_dist/data/batch_slices.py`), so the learning rate, the schedule, the step
count and the order of images do not change with the world size: a run that
lost and regained ranks trains on the same batches as one that did not, and
its checkpoints resume in any other run. Horovod's own examples keep the batch
per rank instead and scale the learning rate with the world size; that keeps
a GPU's memory use fixed but makes the optimisation depend on the failures.
Here each rank's share grows when ranks are lost: it must fit at --min-np.

This is Horovod's `elastic.run` loop, written here because Horovod's TensorFlow
version recognises a failed collective only by the names of its ungrouped ops
(the step sums gradients with HorovodGroupedAllreduce), swallows any other
error, and its Keras state helpers do not work with Keras 3 variables
(horovod#4290); the state here is synchronised with the backend's broadcast.
"""

import logging

import numpy as np
import tensorflow as tf
from horovod.common.elastic import State, notification_manager
from horovod.common.exceptions import HostsUpdatedInterrupt

from alexnet_dist.config import ConfigError, DistributeConfig
from alexnet_dist.data.batch_slices import BatchSlices
from alexnet_dist.distribute.horovod import HorovodRuntime

log = logging.getLogger(__name__)


class ElasticHorovodRuntime(HorovodRuntime):
    """Horovod whose ranks may change between commits; see the module docstring."""

    elastic = True

    def __init__(self, cfg: DistributeConfig):
        super().__init__(cfg)
        self.commit_every = cfg.commit_every_steps
        self.state: CommittedState | None = None

    @property
    def input_pipelines(self) -> int:
        return 1  # one record order per epoch, sliced by batch

    def _input_context(self) -> tf.distribute.InputContext:
        size = self.hvd.size()
        return BatchSlices(size, self.hvd.rank(), size)

    def per_replica_batch(self, global_batch: int, key: str) -> int:
        size = self.hvd.size()
        if global_batch < size:
            raise ConfigError(f"{key}={global_batch} is smaller than the {size} ranks")
        start, end = BatchSlices(size, self.hvd.rank(), size).share(global_batch)
        return end - start

    def prepare(self, variables: list, rng_states: list) -> None:
        # Nothing collective yet: a rank that joins later runs this while the others
        # wait in `run`'s synchronisation, which is where the broadcast happens.
        self.state = CommittedState(self, variables, rng_states)

    def step_done(self, step: int) -> None:
        if step % self.commit_every == 0:
            self.state.commit()

    def run(self, train):
        notification_manager.init()
        notification_manager.register_listener(self.state)
        try:
            while True:
                try:
                    self.state.sync()
                    return train()
                except HostsUpdatedInterrupt as e:
                    why = "ranks were removed" if e.skip_sync else "ranks were added"
                except tf.errors.OpError as e:
                    if not _collective_failed(e):
                        raise
                    why = "a collective failed: a rank exited or stopped answering"
                    self.state.restore()
                before = self.hvd.size()
                self.hvd.shutdown()
                self.hvd.init()
                self.state.on_reset()
                log.warning(
                    "elastic Horovod: %s; %d -> %d ranks, this is rank %d; going on from the "
                    "commit at step %d", why, before, self.hvd.size(), self.hvd.rank(),
                    self.state.committed_step,
                )  # fmt: skip
        finally:
            notification_manager.remove_listener(self.state)


def _collective_failed(error: tf.errors.OpError) -> bool:
    # "Horovod has been shut down. This was caused by an exception on one of the
    # ranks ..." from any Horovod op, grouped or not, in a step or eagerly.
    return "Horovod" in (error.message or "")


class CommittedState(State):
    """The variables of the training state, committed to host memory and synchronised
    from rank 0 with the backend's broadcast.

    Dropout's random state is offset by each rank's index (`offset_by_replica`);
    a reset takes the offset off again, so that rank 0's state after the
    broadcast is the one a one-rank run would hold, and each rank then adds its
    new index.
    """

    def __init__(self, runtime: ElasticHorovodRuntime, variables: list, rng_states: list):
        hvd = runtime.hvd
        super().__init__(bcast_object=hvd.broadcast_object, get_rank=hvd.rank)
        self.runtime = runtime
        self.variables = variables
        self.rng_states = rng_states
        self.iterations = next(v for v in variables if v.name == "iteration")
        self._offset = 0  # the rank index the random states hold
        self._saved: list[np.ndarray] | None = None
        self.committed_step = 0

    def save(self) -> None:
        self._saved = [np.array(v.numpy()) for v in self.variables]
        self.committed_step = int(self.iterations.numpy())

    def restore(self) -> None:
        if self._saved is None:
            return
        for v, value in zip(self.variables, self._saved, strict=True):
            v.assign(value)

    def reset(self) -> None:
        for v in self.rng_states:
            v.assign_sub(tf.constant([self._offset, 0], dtype=v.dtype))
        self._offset = 0

    def sync(self) -> None:
        self.runtime.broadcast_variables(self.variables)
        self.runtime.offset_by_replica(self.rng_states)
        self._offset = self.runtime.hvd.rank()
        self.save()
