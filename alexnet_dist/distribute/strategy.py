"""Backends built on a `tf.distribute.Strategy`: single, mirrored and multiworker."""

import json
import os

import tensorflow as tf

from alexnet_dist.config import DistributeConfig
from alexnet_dist.distribute import cluster, devices, watchdog
from alexnet_dist.distribute.placement import Placement
from alexnet_dist.distribute.runtime import Runtime, as_iterated


class StrategyRuntime(Runtime):
    """A Runtime that delegates to a tf.distribute strategy.

    The strategy's optimizer integration sums gradients over replicas inside
    `apply_gradients` (`optimizer_sums_gradients`), so the step leaves them to it.
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

    # Whether `distribute_dataset` copies batches to the replica's device ahead of the step
    # (the mirrored strategies do it themselves).
    prefetch = False

    def distribute_dataset(self, dataset_fn):
        if self.prefetch:
            dataset_fn = devices.prefetched_to(self.placement.batch_device, dataset_fn)
        return self.strategy.distribute_datasets_from_function(as_iterated(dataset_fn))

    def offset_by_replica(self, variables):
        if not variables or self.num_replicas == 1:
            return

        @tf.function
        def offset():
            def add_replica_index():
                index = tf.distribute.get_replica_context().replica_id_in_sync_group
                for v in variables:
                    v.assign_add(tf.cast(tf.stack([index, 0]), v.dtype))

            self.strategy.run(add_replica_index)

        offset()

    def first_replica(self, value):
        return tf.nest.map_structure(
            lambda v: self.strategy.experimental_local_results(v)[0], value
        )

    def all_reduce_sum(self, value):
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, value)

    def run_and_sum(self, fn, args):
        def summed(*replica_args):
            return self.all_reduce_sum(fn(*replica_args))

        # After the all-reduce every local replica holds the same sums: take the first.
        return self.strategy.experimental_local_results(self.strategy.run(summed, args=args))[0]


def single(cfg: DistributeConfig) -> StrategyRuntime:
    """One process, one replica, on TensorFlow's default device.

    Variables are not pinned to a device, so the model can place its towers on
    devices of its own: with devices_per_replica=2 the first two GPUs (or logical
    CPUs), as the paper split the network over two GTX 580s.
    """
    devices.use_logical_cpus(cfg.logical_cpus)
    runtime = StrategyRuntime(tf.distribute.get_strategy())
    kind, local = devices.accelerators()
    if cfg.devices_per_replica > 1:
        mine = devices.replica_devices(local, 0, 1, cfg.devices_per_replica, kind)
        runtime.placement = Placement(mine, owt_hybrid=cfg.owt_hybrid)
    # The default strategy leaves batches on the host: copy them ahead of the step.
    runtime.prefetch = True
    return runtime


def mirrored(cfg: DistributeConfig) -> StrategyRuntime:
    """One process, one replica per device (all local GPUs unless `devices` names them)."""
    chosen = cfg.devices or None
    if cfg.logical_cpus:
        devices.use_logical_cpus(cfg.logical_cpus)
        chosen = chosen or [f"/cpu:{i}" for i in range(cfg.logical_cpus)]
    return StrategyRuntime(tf.distribute.MirroredStrategy(devices=chosen))


_COLLECTIVES = {
    "auto": tf.distribute.experimental.CommunicationImplementation.AUTO,
    "ring": tf.distribute.experimental.CommunicationImplementation.RING,
    "nccl": tf.distribute.experimental.CommunicationImplementation.NCCL,
}


def multiworker(cfg: DistributeConfig) -> StrategyRuntime:
    """One process per worker, all local GPUs (or the CPU) of each, synchronous all-reduce."""
    if cfg.cluster == "hosts":
        os.environ["TF_CONFIG"] = json.dumps(cluster.tf_config(cfg.hosts, cfg.task_index))
    elif cfg.cluster == "slurm":
        os.environ["TF_CONFIG"] = json.dumps(
            cluster.from_slurm(cfg.port_base, cfg.node_port_offset)
        )
    spec = cluster.read_tf_config()
    workers, index = spec["cluster"]["worker"], spec["task"]["index"]
    peers = [w for i, w in enumerate(workers) if i != index]
    # The strategy waits for every worker; a peer that never comes would hang it.
    joining = f"worker {index} joining {len(workers)} workers"
    _configure_coordination(len(workers), cfg.peer_timeout_s)
    with watchdog.deadline(cfg.timeout_s, joining, peers):
        strategy = tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=tf.distribute.experimental.CommunicationOptions(
                implementation=_COLLECTIVES[cfg.collective]
            )
        )
    return StrategyRuntime(strategy, num_workers=len(workers), worker_index=index)


def _configure_coordination(num_workers: int, peer_timeout_s: float) -> None:
    """TensorFlow's coordination service as MultiWorkerMirroredStrategy sets it up,
    with our bound on a silent peer.

    Every worker sends the service (on worker 0) a heartbeat; one that misses them
    for `peer_timeout_s` is declared dead and every worker's pending collectives
    fail, naming it. Left to itself the strategy uses TensorFlow's default (10 s
    heartbeats, about 33 s to end a job); it keeps a configuration set before it.
    """
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.eager import context

    context.context().configure_coordination_service(
        service_type="standalone",
        service_leader="/job:worker/replica:0/task:0",
        coordinated_jobs=[
            coordination_config_pb2.CoordinatedJob(name="worker", num_tasks=num_workers)
        ],
        heartbeat_timeout_in_ms=int(peer_timeout_s * 1000) or 2**31 - 1,
    )
