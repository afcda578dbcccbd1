"""The Horovod backend: one process per GPU (or CPU), gradients summed with grouped all-reduce.

Horovod 0.28.1 works with Keras 3 variables through `hvd.grouped_allreduce` and
`hvd.broadcast_variables` on their underlying tf.Variables; its
`DistributedGradientTape` does not (AttributeError on `.ref`, horovod#4290), so
the step reduces gradients through `reduce_gradients` instead.
"""

import contextlib

import keras
import tensorflow as tf

from alexnet_dist.config import ConfigError, DistributeConfig
from alexnet_dist.distribute.runtime import Runtime

INSTALL_HINT = (
    "distribute.backend=horovod needs Horovod built with TensorFlow support: run `make horovod` "
    "(it builds horovod 0.28.1 with TensorFlow and Gloo into .venv, in a few minutes once)"
)


def _import_horovod():
    try:
        import horovod.tensorflow as hvd
    except ImportError as e:
        raise ConfigError(f"{INSTALL_HINT} ({e})") from None
    return hvd


class HorovodRuntime(Runtime):
    """One replica per process; rank 0 is the chief."""

    def __init__(self, cfg: DistributeConfig):
        hvd = _import_horovod()
        hvd.init()
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:  # one GPU per process, chosen by its rank on this host
            gpu = gpus[hvd.local_rank() % len(gpus)]
            tf.config.experimental.set_memory_growth(gpu, True)
            tf.config.set_visible_devices(gpu, "GPU")
        self.hvd = hvd
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
        size, rank = self.hvd.size(), self.hvd.rank()
        return dataset_fn(tf.distribute.InputContext(size, rank, size))

    def all_reduce_sum(self, value):
        flat = tf.nest.flatten(value)
        summed = self.hvd.grouped_allreduce(flat, op=self.hvd.Sum)
        return tf.nest.pack_sequence_as(value, summed)

    def run_and_sum(self, fn, args):
        return self.all_reduce_sum(fn(*args))

    def reduce_gradients(self, grads):
        return self.hvd.grouped_allreduce(grads, op=self.hvd.Sum, compression=self.compression)

    def offset_by_replica(self, variables):
        for v in variables:
            v.assign_add(tf.constant([self.hvd.rank(), 0], dtype=v.dtype))

    def broadcast_variables(self, variables):
        # Keras variables wrap the tf.Variable that Horovod can broadcast.
        plain = [v.value if isinstance(v, keras.Variable) else v for v in variables]
        self.hvd.broadcast_variables(plain, root_rank=0)


def horovod(cfg: DistributeConfig) -> HorovodRuntime:
    return HorovodRuntime(cfg)
