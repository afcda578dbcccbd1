"""The configuration: the typed schema behind conf/ (schema.py) and every check of a
composed config (validation.py, placement.py). It imports no other part of the project,
so a config error comes before TensorFlow loads."""

from alexnet_dist.config.schema import (
    BACKENDS,
    OPTIMIZERS,
    SCHEDULES,
    Config,
    ConfigError,
    DataConfig,
    DistributeConfig,
    ModelConfig,
    OptimConfig,
    PrecisionConfig,
    TrainerConfig,
    register,
)
from alexnet_dist.config.validation import validate

__all__ = [
    "BACKENDS",
    "OPTIMIZERS",
    "SCHEDULES",
    "Config",
    "ConfigError",
    "DataConfig",
    "DistributeConfig",
    "ModelConfig",
    "OptimConfig",
    "PrecisionConfig",
    "TrainerConfig",
    "register",
    "validate",
]
