"""The Horovod backend: one process per GPU (or CPU), gradients summed with grouped all-reduce.

Horovod 0.28.1 works with Keras 3 variables through `hvd.grouped_allreduce` and
`hvd.broadcast_variables` on their underlying tf.Variables; its
`DistributedGradientTape` does not (AttributeError on `.ref`, horovod#4290), so
the step sums gradients itself (`sum_gradients`) before the optimizer applies them.
"""

import contextlib
import os

import keras
import tensorflow as tf

from alexnet_dist.config import ConfigError, DistributeConfig
from alexnet_dist.data.batch_slices import BatchSlices
from alexnet_dist.distribute import devices
from alexnet_dist.distribute.placement import Placement
from alexnet_dist.distribute.rank_group import RankGroup
from alexnet_dist.distribute.runtime import Runtime, as_iterated

INSTALL_HINT = (
    "distribute.backend=horovod needs Horovod built with TensorFlow support: run `make horovod` "
    "(it builds horovod 0.28.1 with TensorFlow and Gloo into .venv, in a few minutes once)"
)


def import_horovod():
    try:
        import horovod.tensorflow as hvd
    except ImportError as e:
        raise ConfigError(f"{INSTALL_HINT} ({e})") from None
    return hvd


class HorovodRuntime(Runtime):
    """One replica per process; rank 0 is the chief.

    With devices_per_replica=2 each rank owns two devices: on a host with G GPUs,
    local rank r makes GPUs 2r and 2r+1 its /gpu:0 and /gpu:1 (so `horovodrun
    -np` is G / 2 per host) and puts tower a on the first, tower b on the second.
    Without GPUs, `logical_cpus=2` gives each rank two stand-in CPU devices.
    """

    def __init__(self, cfg: DistributeConfig):
        hvd = import_horovod()
        # Gloo's bound on one collective (its own default: 30 s), read by hvd.init():
        # a rank that stops answering fails the others' pending all-reduce after it.
        # Under MPI (srun --mpi=pmix) Horovod's MPI controller has no such bound.
        timeout = str(int(cfg.peer_timeout_s)) if cfg.peer_timeout_s else str(2**31 // 1000)
        os.environ["HOROVOD_GLOO_TIMEOUT_SECONDS"] = timeout
        ranks_per_replica = cfg.ranks_per_replica
        if ranks_per_replica > 1:  # groups of ranks talk among themselves
            os.environ["HOROVOD_DYNAMIC_PROCESS_SETS"] = "1"
            hvd.init(process_sets="dynamic")
        else:
            hvd.init()
        devices.use_logical_cpus(cfg.logical_cpus)
        per_replica = cfg.devices_per_replica
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:  # this rank's GPUs, chosen by its rank on this host
            mine = devices.rank_devices(gpus, hvd.local_rank(), hvd.local_size(), per_replica)
            for gpu in mine:
                tf.config.experimental.set_memory_growth(gpu, True)
            tf.config.set_visible_devices(mine, "GPU")
        replica, group = None, None  # this rank's devices (when its model spans several)
        if per_replica > 1:
            kind, local = devices.accelerators()
            replica = devices.replica_devices(local, 0, 1, per_replica, kind)
        self.hvd = hvd
        if ranks_per_replica > 1:
            if hvd.size() % ranks_per_replica:
                raise ConfigError(
                    f"distribute.ranks_per_replica={ranks_per_replica} does not divide the "
                    f"{hvd.size()} ranks into whole replicas"
                )
            group = RankGroup(hvd, ranks_per_replica)
        self.placement = Placement(replica, owt_hybrid=cfg.owt_hybrid, rank_group=group,
                                   replica_sum=self._replica_sum)  # fmt: skip
        self.compression = hvd.Compression.fp16 if cfg.fp16_allreduce else hvd.Compression.none

    @property
    def num_replicas(self) -> int:
        return self.hvd.size()

    @property
    def num_workers(self) -> int:
        return self.hvd.size()

    @property
    def worker_index(self) -> int:
        return self.hvd.rank()

    def scope(self):
        return contextlib.nullcontext()

    def distribute_dataset(self, dataset_fn):
        device = self.placement.batch_device
        return as_iterated(devices.prefetched_to(device, dataset_fn))(self._input_context())

    @property
    def input_pipelines(self) -> int:
        group = self.placement.rank_group
        return self.hvd.size() // (group.size if group else 1)

    def _input_context(self) -> tf.distribute.InputContext:
        size, group = self.hvd.size(), self.placement.rank_group
        if group is not None:  # a replica's ranks read its one record order, a slice each
            return BatchSlices(size, self.hvd.rank(), group.size)
        return tf.distribute.InputContext(size, self.hvd.rank(), size)

    def all_reduce_sum(self, value):
        flat = tf.nest.flatten(value)
        summed = self.hvd.grouped_allreduce(flat, op=self.hvd.Sum)
        return tf.nest.pack_sequence_as(value, summed)

    def run_and_sum(self, fn, args):
        return self.all_reduce_sum(fn(*args))

    optimizer_sums_gradients = False

    def sum_gradients(self, grads, variables):
        # One all-reduce per device: with the towers on two devices, tower a's
        # gradients are summed among the tower-a devices of all ranks, tower b's
        # among the tower-b devices, each where it was computed (NCCL on GPUs).
        # A shard of the hybrid over ranks is summed only among the ranks that hold
        # the same shard in the other replicas: its gradient covers its group already.
        sets: dict[tuple, list[int]] = {}
        group = self.placement.rank_group
        for i, v in enumerate(variables):
            held = group is not None and group.holds(v)
            sets.setdefault((_device_of(v), held), []).append(i)
        reduced = list(grads)
        for (device, held), indices in sets.items():
            if held and group.shard_peers is None:
                continue  # one replica: nobody else holds this shard
            process_set = group.shard_peers if held else self.hvd.global_process_set
            with tf.device(device):
                summed = self.hvd.grouped_allreduce(
                    [grads[i] for i in indices], op=self.hvd.Sum, compression=self.compression,
                    process_set=process_set,
                )  # fmt: skip
            for i, g in zip(indices, summed, strict=True):
                reduced[i] = g
        return reduced

    def summed_variables(self, variables):
        group = self.placement.rank_group
        if group is None or group.shard_peers is not None:
            return list(variables)
        return [v for v in variables if not group.holds(v)]

    def batches_in_gradient(self, variable):
        group = self.placement.rank_group
        return group.size if group is not None and group.holds(variable) else 1

    def offset_by_replica(self, variables):
        for v in variables:
            v.assign_add(tf.constant([self.hvd.rank(), 0], dtype=v.dtype))

    def _replica_sum(self, x: tf.Tensor) -> tf.Tensor:
        """`x` summed over every rank (AlexNet-BN's synchronised statistics)."""
        return self.hvd.allreduce(x, op=self.hvd.Sum)

    def broadcast_variables(self, variables):
        # Keras variables wrap the tf.Variable that Horovod can broadcast.
        plain = [v.value if isinstance(v, keras.Variable) else v for v in variables]
        self.hvd.broadcast_variables(plain, root_rank=0)


def _device_of(variable) -> str:
    return (variable.value if isinstance(variable, keras.Variable) else variable).device
