"""Where one replica's model lives, and the one builder that puts it there.

A backend decides each replica's devices (devices.py) and gives the runtime a
`Placement`; `build_model` builds the network of `cfg.model` that way:

- one device (the default);
- the paper's two towers on two devices (`devices`, two of them): tower a's layers
  on the first, tower b's on the second, as the paper split the network over two
  GPUs (models/alexnet.py places them);
- the 2014 hybrid (`owt_hybrid`) over K `devices` of this process or over the K
  Horovod ranks of `rank_group` (owt_hybrid.py). It starts from the one-device
  network's initial weights, so that the same seed gives the same network in
  every layout.

`one_device_form` is the model's form in checkpoints (one_device.py). What else
depends on the placement (where batches are prefetched to, whether XLA is on by
default, the traffic a step makes between a replica's devices) is asked of the
`Placement` here, so that the training code does not branch on it.
"""

import dataclasses
from collections.abc import Callable

import keras
import tensorflow as tf

from alexnet_dist.config import ModelConfig
from alexnet_dist.distribute import devices as device_lists
from alexnet_dist.distribute.one_device import OneDeviceForm, OneDeviceTwin, load_one_device
from alexnet_dist.distribute.owt_hybrid import HybridOWT, RankShardOWT
from alexnet_dist.distribute.rank_group import RankGroup
from alexnet_dist.models import build_alexnet
from alexnet_dist.models.owt_shards import SplitOWT
from alexnet_dist.models.traffic import hybrid_traffic, tower_traffic


@dataclasses.dataclass(frozen=True)
class Placement:
    # A replica's devices when its model spans several: the paper's two towers (tower a
    # on the first, tower b on the second), or the 2014 hybrid's K. None: one device.
    devices: list[str] | None = None
    # The one-tower network spread over `devices`, or over `rank_group`, the 2014 way.
    owt_hybrid: bool = False
    # The 2014 hybrid over Horovod ranks (distribute.ranks_per_replica): the ranks of this
    # process's replica, which the model exchanges activations with (rank_group.py).
    rank_group: RankGroup | None = None
    # Sums a tensor over every replica where no tf.distribute strategy does (Horovod ranks):
    # AlexNet-BN's synchronised statistics (models/batch_norm.py). None: nothing to sum.
    replica_sum: Callable | None = None

    @property
    def spans(self) -> int:
        """How many devices or ranks one replica's model spans."""
        if self.rank_group is not None:
            return self.rank_group.size
        return len(self.devices) if self.devices else 1

    @property
    def batch_device(self) -> str:
        """Where a replica's batches are prefetched to: its (first) device, or the host for
        the 2014 hybrid, which splits each batch there and sends each device its part."""
        if self.owt_hybrid and self.devices:
            return "/cpu:0"
        return self.devices[0] if self.devices else device_lists.accelerators()[1][0]

    @property
    def xla_by_default(self) -> bool:
        """What trainer.jit_compile=null means: XLA where each replica runs on one GPU.

        On GPUs XLA fuses the elementwise work (the input's normalisation, among
        others) into a few kernels. On CPU it loses (float32 61 -> 52 images/s,
        bf16 84 -> 49, measured on the paper network), and it compiles one device,
        so a model over several devices or ranks runs without it.
        """
        kind, _ = device_lists.accelerators()
        return kind == "GPU" and self.spans == 1

    def traffic(self, one_device: keras.Model, global_batch: int, replicas: int,
                activation_bytes: int, gradient_bytes: int) -> str | None:  # fmt: skip
        """What a step moves between a replica's devices (the towers', or the 2014 hybrid's
        over K devices or K ranks), for the log; None for a model on one device.

        Args:
            one_device: the network in its one-device form.
            global_batch: images per step over all `replicas`.
            activation_bytes, gradient_bytes: bytes per value of the maps and of the
                all-reduced gradients.
        """
        if self.spans == 1:
            return None
        sizes = {"activation_bytes": activation_bytes, "gradient_bytes": gradient_bytes}
        per_replica = global_batch // replicas
        if self.owt_hybrid:
            # Over ranks each rank is a replica of the loop: its batch is the device's.
            per_device = per_replica // (1 if self.rank_group is not None else self.spans)
            return hybrid_traffic(one_device, devices=self.spans, **sizes).describe(per_device)
        towers = tower_traffic(one_device, **sizes).describe(per_replica)
        return f"towers: a on {self.devices[0]}, b on {self.devices[1]}; {towers}"


ONE_DEVICE = Placement()


def build_model(
    cfg: ModelConfig, num_classes: int, placement: Placement = ONE_DEVICE
) -> keras.Model:
    """The network of `cfg` with `num_classes` outputs, built where `placement` says.

    Every command builds its network here: training, evaluation and export, the
    benchmarks and the numerics checks.
    """
    if not placement.owt_hybrid:
        return build_alexnet(cfg.variant, num_classes, cfg.image_size, cfg.width, cfg.dropout,
                             tower_devices=placement.devices, init=cfg.init,
                             batch_norm=cfg.batch_norm, sync_batch_norm=cfg.sync_batch_norm,
                             replica_sum=placement.replica_sum)  # fmt: skip
    # The one-device network first, as a run on one device builds it from the same seed,
    # in host memory; the hybrid then takes its values.
    with tf.device("/cpu:0"):
        network = build_model(cfg, num_classes)
    if placement.rank_group is not None:
        hybrid = RankShardOWT(cfg, num_classes, placement.rank_group, name="alexnet_owt")
    else:
        hybrid = HybridOWT(cfg, num_classes, placement.devices, name="alexnet_owt")
    load_one_device(hybrid, network)
    return hybrid


def one_device_form(
    model: keras.Model, optimizer, make_optimizer: Callable[[keras.Model], object]
) -> OneDeviceForm:
    """The model in the form its checkpoints hold (one_device.py); `make_optimizer` builds
    the run's optimizer for a model (a twin's, for a model spread the 2014 way)."""
    if not isinstance(model, SplitOWT):
        return OneDeviceForm(model, optimizer)
    with tf.device("/cpu:0"):  # host memory, not the first accelerator's
        twin = build_model(model.model_config, model.num_classes)
        twin_optimizer = make_optimizer(twin)
    return OneDeviceTwin(model, optimizer, twin, twin_optimizer)
