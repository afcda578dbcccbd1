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

A rank that hangs (SIGSTOP, a stalled filesystem, a wedged driver) rather than dies
fails the others' collective after `distribute.peer_timeout_s`; but horovodrun's
driver records only ranks that exit, and would hold the survivors in the next
rendezvous for ever. The project's Horovod build (tools/horovod/elastic-hung-worker.patch)
stops a rank that does not come back to a rendezvous within the largest timeout the
ranks report, counted from the first that does come, and blacklists its host: the
survivors go on. Each rank reports its `peer_timeout_s` before `hvd.init()`.

This is Horovod's `elastic.run` loop, written here because Horovod's TensorFlow
version recognises a failed collective only by the names of its ungrouped ops
(the step sums gradients with HorovodGroupedAllreduce), swallows any other
error, and its Keras state helpers do not work with Keras 3 variables
(horovod#4290); the state here is synchronised with the backend's broadcast.
"""

import hashlib
import logging
import os

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
        report_peer_timeout(cfg.peer_timeout_s)
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


def report_peer_timeout(seconds: float) -> None:
    """Tells horovodrun's driver how long this rank waits for a peer, so that it stops a
    rank that is away from a rendezvous longer than that (see the module docstring)."""
    from horovod.runner.elastic import rendezvous
    from horovod.runner.http.http_client import put_data_into_kvstore

    if not hasattr(rendezvous, "PUT_WORKER_TIMEOUT"):
        log.warning("this Horovod build does not stop hung ranks (run `make horovod`): a rank "
                    "that hangs holds the others in the next rendezvous")  # fmt: skip
        return
    if not seconds:  # no bound on a collective: no bound on a rendezvous either
        return
    env = os.environ
    put_data_into_kvstore(
        env["HOROVOD_GLOO_RENDEZVOUS_ADDR"], int(env["HOROVOD_GLOO_RENDEZVOUS_PORT"]),
        rendezvous.PUT_WORKER_TIMEOUT, f"{env['HOROVOD_HOSTNAME']}:{env['HOROVOD_LOCAL_RANK']}",
        float(seconds),
    )  # fmt: skip


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
        # Every rank logs the digest of the state it now holds: equal on every rank, or
        # the broadcast did not happen (tests/distribute/test_elastic.py compares them).
        log.info(
            "elastic Horovod: rank %d of %d holds rank 0's state at step %d (digest %s)",
            self.runtime.hvd.rank(), self.runtime.hvd.size(), int(self.iterations.numpy()),
            digest(self.variables),
        )  # fmt: skip
        self.runtime.offset_by_replica(self.rng_states)
        self._offset = self.runtime.hvd.rank()
        self.save()


def digest(variables: list) -> str:
    """A short hash of the variables' values, in order."""
    h = hashlib.blake2b(digest_size=8)
    for v in variables:
        h.update(np.ascontiguousarray(v.numpy()).tobytes())
    return h.hexdigest()
