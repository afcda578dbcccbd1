"""What one training step of a network moves, from its shapes: the planner's byte counts.

Every figure comes from models/traffic.py on the network that `alexnet-train` would
build (placement.build_model), so the planner, the training log and the tests that
count bytes on the wire agree by construction.
"""

import dataclasses
import functools

import numpy as np

from alexnet_dist.config import ModelConfig
from alexnet_dist.distribute.placement import build_model
from alexnet_dist.models.traffic import hybrid_traffic, tower_traffic

# Bytes per value of the maps and of the all-reduced gradients, by precision.
ACTIVATION_BYTES = {"fp32": 4, "mixed_bfloat16": 2, "mixed_float16": 2}


@dataclasses.dataclass(frozen=True)
class NetworkBytes:
    """Bytes of one step of `variant` at `width` and `image_size` with `classes` outputs."""

    variant: str
    width: float
    image_size: int
    classes: int
    parameters: int
    gradient_bytes: int  # the whole network's gradients, summed over data-parallel replicas
    conv_gradient_bytes: int  # the convolutions' (what the 2014 hybrid all-reduces over all)
    tower_gradient_bytes: tuple[int, int]  # tower a's (with fc8) and tower b's ("paper")
    crosslink_bytes_per_image: int  # "paper": between a replica's two devices, per image
    activation_bytes: int  # per value of the maps: 4, or 2 under mixed precision

    def hybrid_exchange_bytes_per_image(self, k: int) -> int:
        """The 2014 hybrid on k devices: activations and their gradients a device sends for
        each image of its own share of the batch (models/traffic.py's figure)."""
        return _hybrid_exchange(self.width, self.image_size, self.classes, k,
                                self.activation_bytes)  # fmt: skip


def _model_config(variant: str, width: float, image_size: int) -> ModelConfig:
    return ModelConfig(variant=variant, width=width, image_size=image_size, dropout=0.0)


@functools.cache
def _network(variant: str, width: float, image_size: int, classes: int):
    return build_model(_model_config(variant, width, image_size), classes)


@functools.cache
def _hybrid_exchange(width, image_size, classes, k, activation_bytes) -> int:
    traffic = hybrid_traffic(_network("owt", width, image_size, classes), devices=k,
                             activation_bytes=activation_bytes)  # fmt: skip
    return traffic.exchanged_bytes_per_image


def network_bytes(
    variant: str,
    width: float = 1.0,
    image_size: int = 227,
    classes: int = 1000,
    precision: str = "fp32",
    fp16_allreduce: bool = False,
) -> NetworkBytes:
    """The byte counts of `variant` ("paper" or "owt"), built as alexnet-train builds it."""
    if precision not in ACTIVATION_BYTES:
        raise ValueError(f"precision must be one of {sorted(ACTIVATION_BYTES)}, got {precision!r}")
    act = ACTIVATION_BYTES[precision]
    grad = 2 if fp16_allreduce else 4
    model = _network(variant, width, image_size, classes)
    params = int(sum(np.prod(v.shape) for v in model.trainable_variables))
    conv = sum(int(np.prod(v.shape)) for v in model.trainable_variables
               if v.path.split("/")[0].startswith("conv"))  # fmt: skip
    towers, crosslink = (0, 0), 0
    if variant == "paper":
        t = tower_traffic(model, activation_bytes=act, gradient_bytes=grad)
        towers = (t.allreduce_bytes["a"], t.allreduce_bytes["b"])
        crosslink = t.crosslink_bytes_per_image
    return NetworkBytes(
        variant=variant, width=width, image_size=image_size, classes=classes,
        parameters=params, gradient_bytes=params * grad, conv_gradient_bytes=conv * grad,
        tower_gradient_bytes=towers, crosslink_bytes_per_image=crosslink, activation_bytes=act,
    )  # fmt: skip
