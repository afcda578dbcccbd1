"""Bytes that move in one training step of the two-tower network, computed from its shapes.

With the towers on two devices, maps cross between them only at the paper's
cross-links: conv3, fc6 and fc7 read both towers' maps, and fc8 (on tower a's
device) reads tower b's fc7. Each crossing map goes over once in the forward
pass and its gradient comes back once in the backward pass. Each device also
receives the input images once (from the host, or from the other device).

Gradients are all-reduced per tower: tower a's among the tower-a devices of all
replicas, tower b's among the tower-b devices. With one device per replica the
whole model's gradients go through every device's all-reduce.
"""

import dataclasses

import numpy as np

from alexnet_dist.models.alexnet import PaperAlexNet, _pooled_size


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
    pool2 = _pooled_size(model.image_size, "paper", poolings=2)
    pool5 = _pooled_size(model.image_size, "paper")
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
