"""AlexNet models: `build_alexnet` and the paper's `LocalResponseNormalization`."""

from alexnet_dist.models.alexnet import PaperAlexNet, build_alexnet
from alexnet_dist.models.lrn import LocalResponseNormalization

__all__ = ["LocalResponseNormalization", "PaperAlexNet", "build_alexnet"]
