"""Checks of a composed config that its types cannot make: each error names the key."""

import logging

from alexnet_dist.config.placement import validate_placement
from alexnet_dist.config.schema import (
    BACKENDS,
    CLUSTERS,
    COLLECTIVES,
    INITS,
    OPTIMIZERS,
    POLICIES,
    SCHEDULES,
    SOURCES,
    TRAIN_CROPS,
    VARIANTS,
    Config,
    ConfigError,
    DistributeConfig,
)

log = logging.getLogger(__name__)


def _positive(cfg: Config, *keys: str) -> None:
    for key in keys:
        value = cfg
        for part in key.split("."):
            value = getattr(value, part)
        if value is not None and not value > 0:
            raise ConfigError(f"{key} must be positive, got {value!r}")


def validate(cfg: Config) -> Config:
    """Checks what types cannot; raises ConfigError naming the offending key."""
    if cfg.data.parallel_calls < -1:
        raise ConfigError(
            f"data.parallel_calls must be -1 (autotune), 0 (one per core) or a count, "
            f"got {cfg.data.parallel_calls!r}"
        )
    _positive(
        cfg,
        "model.image_size",
        "model.width",
        "data.global_batch_size",
        "data.eval_batch_size",
        "data.resize_size",
        "data.shuffle_buffer",
        "data.shapes.image_size",
        "data.shapes.train_per_class",
        "data.shapes.val_per_class",
        "data.synthetic.num_classes",
        "data.synthetic.train_examples",
        "data.synthetic.val_examples",
        "optim.lr",
        "optim.base_batch_size",
        "optim.decay_every_epochs",
        "optim.plateau_patience",
        "precision.initial_loss_scale",
        "precision.loss_scale_growth_steps",
        "trainer.epochs",
        "trainer.max_steps",
        "trainer.log_every_steps",
        "trainer.checkpoint_every_steps",
        "trainer.keep_checkpoints",
    )
    profile = cfg.trainer.profile_steps
    if profile is not None and (len(profile) != 2 or not 1 <= profile[0] <= profile[1]):
        raise ConfigError(
            f"trainer.profile_steps must be [first, last] with 1 <= first <= last, got {profile}"
        )
    if cfg.model.variant not in VARIANTS:
        raise ConfigError(f"model.variant must be one of {VARIANTS}, got {cfg.model.variant!r}")
    if cfg.model.batch_norm and cfg.model.variant != "paper":
        raise ConfigError(
            "model.batch_norm=true is AlexNet-BN, a variant of the paper network (model=paper_bn);"
            f" model.variant={cfg.model.variant!r} has none"
        )
    if cfg.model.sync_batch_norm and not cfg.model.batch_norm:
        raise ConfigError("model.sync_batch_norm=true needs model.batch_norm=true (model=paper_bn)")
    if cfg.model.init not in INITS:
        raise ConfigError(f"model.init must be one of {INITS}, got {cfg.model.init!r}")
    if not 0 <= cfg.model.dropout < 1:
        raise ConfigError(f"model.dropout must be in [0, 1), got {cfg.model.dropout!r}")
    if cfg.data.source not in SOURCES:
        raise ConfigError(f"data.source must be one of {SOURCES}, got {cfg.data.source!r}")
    if cfg.data.source == "tfrecord" and not cfg.data.dir:
        raise ConfigError("data.dir must name the converted records when data.source=tfrecord")
    if cfg.data.source == "tfds" and not cfg.data.name:
        raise ConfigError("data.name must name the TFDS dataset when data.source=tfds")
    if cfg.model.image_size > cfg.data.resize_size:
        raise ConfigError(
            f"model.image_size={cfg.model.image_size} is larger than "
            f"data.resize_size={cfg.data.resize_size}: crops are taken from the resized image"
        )
    if len(cfg.data.mean) != 3 or len(cfg.data.std) != 3:
        raise ConfigError("data.mean and data.std must have one value per RGB channel")
    if cfg.data.eval_crops not in (1, 10):
        raise ConfigError(f"data.eval_crops must be 1 or 10, got {cfg.data.eval_crops!r}")
    if cfg.data.train_crop not in TRAIN_CROPS:
        raise ConfigError(
            f"data.train_crop must be one of {TRAIN_CROPS}, got {cfg.data.train_crop!r}"
        )
    if cfg.data.lighting_std < 0:
        raise ConfigError(f"data.lighting_std must be >= 0, got {cfg.data.lighting_std!r}")
    if any(s <= 0 for s in cfg.data.std):
        raise ConfigError(f"data.std must be positive, got {cfg.data.std}")
    _validate_distribute(cfg.distribute)
    _validate_elastic(cfg)
    validate_placement(cfg)
    if cfg.precision.policy not in POLICIES:
        raise ConfigError(
            f"precision.policy must be one of {POLICIES}, got {cfg.precision.policy!r}"
        )
    pixel_scale = max(cfg.data.std) < 10
    if (cfg.model.init == "paper") != pixel_scale:
        log.warning(
            "model.init=%s with data.std=%s: the paper's init expects 0-255 pixel inputs "
            "(std 1), He init unit-variance inputs (std ~58); training may stall",
            cfg.model.init, list(cfg.data.std),
        )  # fmt: skip
    if not 0 <= cfg.optim.momentum < 1:
        raise ConfigError(f"optim.momentum must be in [0, 1), got {cfg.optim.momentum!r}")
    if cfg.optim.weight_decay < 0:
        raise ConfigError(f"optim.weight_decay must be >= 0, got {cfg.optim.weight_decay!r}")
    if cfg.optim.warmup_epochs < 0:
        raise ConfigError(f"optim.warmup_epochs must be >= 0, got {cfg.optim.warmup_epochs!r}")
    if cfg.optim.name not in OPTIMIZERS:
        raise ConfigError(f"optim.name must be one of {OPTIMIZERS}, got {cfg.optim.name!r}")
    if cfg.optim.schedule not in SCHEDULES:
        raise ConfigError(f"optim.schedule must be one of {SCHEDULES}, got {cfg.optim.schedule!r}")
    if cfg.optim.plateau_max_drops < 0 or cfg.optim.plateau_min_delta < 0:
        raise ConfigError("optim.plateau_max_drops and optim.plateau_min_delta must be >= 0")
    if not 0 <= cfg.optim.label_smoothing < 1:
        raise ConfigError(
            f"optim.label_smoothing must be in [0, 1), got {cfg.optim.label_smoothing!r}"
        )
    if not 0 < cfg.optim.decay_factor <= 1:
        raise ConfigError(f"optim.decay_factor must be in (0, 1], got {cfg.optim.decay_factor!r}")
    return cfg


def _validate_distribute(cfg: DistributeConfig) -> None:
    for key, value, choices in (
        ("backend", cfg.backend, BACKENDS),
        ("cluster", cfg.cluster, CLUSTERS),
        ("collective", cfg.collective, COLLECTIVES),
    ):
        if value not in choices:
            raise ConfigError(f"distribute.{key} must be one of {choices}, got {value!r}")
    for key in ("timeout_s", "peer_timeout_s"):
        if getattr(cfg, key) < 0:
            raise ConfigError(f"distribute.{key} must be >= 0, got {getattr(cfg, key)!r}")
    if cfg.commit_every_steps < 1:
        raise ConfigError(
            f"distribute.commit_every_steps must be positive, got {cfg.commit_every_steps}"
        )
    hosts_cluster = cfg.backend == "multiworker" and cfg.cluster == "hosts"
    if hosts_cluster and (not cfg.hosts or cfg.task_index is None):
        raise ConfigError(
            "distribute.cluster=hosts needs distribute.hosts (every worker's host:port) "
            "and distribute.task_index (this worker's place in that list)"
        )


def _validate_elastic(cfg: Config) -> None:
    if not cfg.distribute.elastic:
        return
    if cfg.distribute.backend != "horovod":
        raise ConfigError(
            f"distribute.elastic=true is elastic Horovod; distribute={cfg.distribute.backend} "
            "has a fixed set of workers (use distribute=horovod)"
        )
    data = cfg.data
    if data.source not in ("shapes", "tfrecord") or data.service or not data.deterministic:
        raise ConfigError(
            "distribute.elastic=true splits each epoch's one record order between the ranks "
            "there are: it needs data.source=tfrecord or shapes, data.deterministic=true and "
            f"no data.service (got {data.source}, {data.deterministic}, {data.service})"
        )
