"""Bytes that move in one training step of a model spread over devices, computed from its shapes.

The paper's two towers (`tower_traffic`): with the towers on two devices, maps
cross between them only at the paper's cross-links: conv3, fc6 and fc7 read
both towers' maps, and fc8 (on tower a's device) reads tower b's fc7. Each
crossing map goes over once in the forward pass and its gradient comes back
once in the backward pass. Each device also receives the input images once
(from the host, or from the other device).

Gradients are all-reduced per tower: tower a's among the tower-a devices of all
replicas, tower b's among the tower-b devices. With one device per replica the
whole model's gradients go through every device's all-reduce.

The 2014 hybrid (`hybrid_traffic`) on K devices exchanges activations instead
of the fully connected layers' gradients; see distribute/owt_hybrid.py.
"""

import dataclasses

import numpy as np

from alexnet_dist.models.alexnet import PaperAlexNet
from alexnet_dist.models.layers import pooled_size
from alexnet_dist.models.owt_shards import shard_sizes


@dataclasses.dataclass(frozen=True)
class TowerTraffic:
    crosslink_bytes_per_image: int  # both directions, forward and backward, all cross-links
    input_bytes_per_image: int  # the images each device receives
    allreduce_bytes: dict[str, int]  # per step, per tower's device ("a", "b")
    data_parallel_allreduce_bytes: int  # per step, per device, the whole model on one device

    def describe(self, batch: int) -> str:
        mb = 1e6
        a, b = self.allreduce_bytes["a"], self.allreduce_bytes["b"]
        return (
            f"cross-link traffic between a replica's two devices: "
            f"{self.crosslink_bytes_per_image * batch / mb:.1f} MB per step at "
            f"{batch} images per replica ({self.crosslink_bytes_per_image / 1e3:.1f} KB per "
            f"image, forward and backward); gradient all-reduce per step: tower a "
            f"{a / mb:.1f} MB, tower b {b / mb:.1f} MB per device (one device per replica: "
            f"{self.data_parallel_allreduce_bytes / mb:.1f} MB)"
        )


def _bytes(variables, size: int) -> int:
    return sum(int(np.prod(v.shape)) for v in variables) * size


def tower_traffic(
    model: PaperAlexNet, activation_bytes: int = 4, gradient_bytes: int = 4
) -> TowerTraffic:
    """The traffic of one training step of `model` with its towers on two devices.

    Args:
        model: a built two-tower AlexNet (`build_alexnet("paper", ...)`).
        activation_bytes: bytes per value of the maps (4 for float32, 2 under
            mixed_bfloat16 and mixed_float16).
        gradient_bytes: bytes per value of the all-reduced gradients (4, or 2 with
            distribute.fp16_allreduce).
    """
    pool2 = pooled_size(model.image_size, "paper", poolings=2)
    pool5 = pooled_size(model.image_size, "paper")
    # Values of one tower's map that the other tower's device reads, per image.
    crossing = {
        "conv3": pool2 * pool2 * model.conv2_a.filters,
        "fc6": pool5 * pool5 * model.conv5_a.filters,
        "fc7": model.fc6_a.units,
    }
    # conv3, fc6 and fc7 cross both ways; fc8 sits on tower a's device and reads fc7_b.
    values = 2 * sum(crossing.values()) + model.fc7_b.units
    per_tower = {
        t: [v for v in model.trainable_variables if v.path.split("/")[0].endswith(f"_{t}")]
        for t in model.TOWERS
    }
    per_tower["a"] += model.fc8.trainable_variables
    return TowerTraffic(
        crosslink_bytes_per_image=2 * values * activation_bytes,  # forward + backward
        input_bytes_per_image=model.image_size * model.image_size * 3 * activation_bytes,
        allreduce_bytes={t: _bytes(vs, gradient_bytes) for t, vs in per_tower.items()},
        data_parallel_allreduce_bytes=_bytes(model.trainable_variables, gradient_bytes),
    )


@dataclasses.dataclass(frozen=True)
class HybridTraffic:
    """One training step of the 2014 hybrid on K devices, and of plain data parallelism on K.

    All figures are totals over the K devices of one replica.
    """

    devices: int
    # Activations sent between the devices and their gradients sent back, per image of
    # the batch: conv features, fc6 and fc7 units, logits.
    exchanged_bytes_per_image: int
    # The convolutions' gradients, summed over the devices each step (the FC shards' need
    # no sum: each lives on one device). Plain data parallelism sums every gradient.
    allreduced_bytes: int
    data_parallel_allreduced_bytes: int

    def ring_bytes_per_device(self, payload: int) -> float:
        """What each device sends in a ring all-reduce of `payload` bytes."""
        return 2 * (self.devices - 1) / self.devices * payload

    def describe(self, batch_per_device: int) -> str:
        mb, k = 1e6, self.devices
        exchanged = self.exchanged_bytes_per_image * batch_per_device * k
        conv, whole = self.allreduced_bytes, self.data_parallel_allreduced_bytes
        return (
            f"one weird trick on {k} devices, {batch_per_device} images per device: activations "
            f"and their gradients exchanged {exchanged / mb:.1f} MB per step "
            f"({exchanged / k / mb:.1f} MB per device); conv gradients all-reduced "
            f"{conv / mb:.1f} MB ({self.ring_bytes_per_device(conv) / mb:.1f} MB sent per device "
            f"in a ring); plain data parallelism would all-reduce {whole / mb:.1f} MB "
            f"({self.ring_bytes_per_device(whole) / mb:.1f} MB sent per device) and exchange "
            "nothing"
        )


def hybrid_traffic(
    model, devices: int | None = None, activation_bytes: int = 4, gradient_bytes: int = 4
) -> HybridTraffic:
    """The traffic of one training step of the 2014 hybrid (distribute/owt_hybrid.py).

    `model` is a HybridOWT, or the one-device "owt" network with `devices` = K: what its
    hybrid on K devices would move. Per image: its pooled conv features go to the K - 1
    other devices, and each device's fc6 and fc7 units for it to the K - 1 others, each
    once forward and once backward; the logits of devices 1..K-1 go to the first device
    and their gradients back.
    """
    k = devices or len(model.devices)

    def units(stage):  # fc6, or its shards fc6_0, fc6_1, ...
        return sum(layer.units for layer in model.layers if layer.name.split("_")[0] == stage)

    image_size = getattr(model, "image_size", None) or model.input_shape[1]
    pool5 = pooled_size(image_size, "owt")
    features = pool5 * pool5 * model.get_layer("conv5").filters
    classes = units("fc8")
    values = (
        (k - 1) * (features + units("fc6") + units("fc7")) + classes - shard_sizes(classes, k)[0]
    )
    conv = [v for v in model.trainable_variables if v.path.split("/")[0].startswith("conv")]
    return HybridTraffic(
        devices=k,
        exchanged_bytes_per_image=2 * values * activation_bytes,
        allreduced_bytes=_bytes(conv, gradient_bytes),
        data_parallel_allreduced_bytes=_bytes(model.trainable_variables, gradient_bytes),
    )
