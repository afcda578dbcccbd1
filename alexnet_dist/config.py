"""The typed schema behind conf/: one dataclass per config group, plus cross-field checks.

The schema is registered in Hydra's ConfigStore as `base_config`, and
conf/config.yaml lists it first in its defaults, so every YAML file and every
command-line override is merged into these dataclasses: an unknown key or a
value of the wrong type fails before any work, naming the key. `validate` then
checks what types cannot (positive sizes, known choices, sizes that fit).
"""

import logging
from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore

from alexnet_dist.data import stats

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the key."""


@dataclass
class ModelConfig:
    variant: str = "paper"  # "paper" (2012, two towers) or "owt" (2014, one tower)
    image_size: int = 227  # network input side; the training crop size
    width: float = 1.0  # multiplier on every layer's filters and units
    dropout: float = 0.5
    # Two devices to place tower a and tower b on in a one-replica run, e.g.
    # ["/gpu:0", "/gpu:1"]; null keeps the whole model on the replica's device.
    # With data parallelism use distribute.devices_per_replica=2 instead.
    tower_devices: list[str] | None = None
    # "paper": N(0, 0.01) and the paper's unit biases (inputs in 0-255 pixel units);
    # "he": He normal and zero biases (inputs scaled to unit variance, data.std ~58).
    init: str = "paper"


@dataclass
class ShapesConfig:
    """The built-in rendered dataset (alexnet_dist/data/shapes.py)."""

    image_size: int = 112
    train_per_class: int = 600
    val_per_class: int = 100


@dataclass
class SyntheticConfig:
    """Random in-memory images (data.source=synthetic), for throughput benchmarks."""

    num_classes: int = 1000
    train_examples: int = 1_281_167  # one ImageNet epoch
    val_examples: int = 10_000


@dataclass
class DataConfig:
    # "shapes": the built-in dataset; "tfrecord": records made by alexnet-convert;
    # "tfds": a TensorFlow Datasets dataset; "synthetic": random images in memory.
    source: str = "shapes"
    dir: str | None = None  # the records (tfrecord), or TFDS's data_dir (tfds; null: default)
    name: str | None = None  # tfds: the dataset, e.g. imagenet2012, imagenette, cifar10
    manual_dir: str | None = None  # tfds: where manually downloaded archives are (imagenet2012)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    cache_dir: str = "~/.cache/alexnet_dist"  # where the built-in dataset is generated once
    shapes: ShapesConfig = field(default_factory=ShapesConfig)
    train_split: str = "train"
    val_split: str = "val"
    global_batch_size: int = 128  # over all replicas; split evenly between them
    eval_batch_size: int = 256  # global, for validation
    resize_size: int = 256  # shorter side before cropping model.image_size
    shuffle_buffer: int = 10_000
    mean: list[float] = field(default_factory=lambda: list(stats.IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(stats.PIXEL_STD))
    deterministic: bool = True  # fixed element order (needed for exact resume)
    # Images decoded at once per worker: 0 is one per CPU core the process may use;
    # -1 lets tf.data's autotuner choose (its choices made images/s swing by a third).
    parallel_calls: int = 0
    lighting_std: float = 0.0  # the paper's PCA colour noise in training (0.1); 0 is off
    # "paper": random model.image_size crop of the image resized to resize_size;
    # "inception": random 8-100 % area, 3/4-4/3 aspect window resized to image_size.
    train_crop: str = "paper"
    # The tf.data service dispatcher that runs the training input pipeline, e.g.
    # grpc://cpu-node-1:5050 (launch/data_service.sh starts one); null: in-process.
    service: str | None = None
    # Keep each worker's records in memory after the first epoch (records sources);
    # for data that fits in RAM on slow or shared filesystems.
    cache: bool = False
    eval_crops: int = 1  # validation: 1 (centre crop) or 10 (the paper's 10-crop)


@dataclass
class OptimConfig:
    lr: float = 0.01  # at base_batch_size; scaled linearly with the global batch
    base_batch_size: int = 128
    momentum: float = 0.9
    weight_decay: float = 5e-4  # on weights, not biases, as in the paper's update rule
    # "step": lr *= decay_factor every decay_every_epochs; "plateau": the paper's rule,
    # lr *= decay_factor when validation top-1 error stops improving; "cosine": to 0 at the end.
    schedule: str = "step"
    decay_every_epochs: int = 30
    decay_factor: float = 0.1
    plateau_patience: int = 1  # evaluations without improvement before a drop
    plateau_max_drops: int = 3  # the paper lowered the rate three times
    plateau_min_delta: float = 0.0  # smaller top-1 error gains do not count as improvement
    warmup_epochs: float = 0.0  # linear warmup from lr / warmup_steps (large global batches)
    label_smoothing: float = 0.0  # 0 is the paper's plain cross-entropy


@dataclass
class TrainerConfig:
    epochs: int = 90
    max_steps: int | None = None  # stop after this many steps in all (null: epochs decide)
    log_every_steps: int = 100
    checkpoint_every_steps: int = 1000
    keep_checkpoints: int = 3
    seed: int = 0
    deterministic_ops: bool = False  # tf.config.experimental.enable_op_determinism
    # XLA-compile each replica's forward and backward pass; null: on where each replica
    # runs on one GPU, off on CPU, where it is slower (distribute.devices.xla_by_default).
    jit_compile: bool | None = None
    # [first, last]: record a TensorBoard profile (Profile tab) of these steps, e.g. [20, 25]
    profile_steps: list[int] | None = None


@dataclass
class DistributeConfig:
    backend: str = "single"  # single | mirrored | multiworker | horovod
    # mirrored: the devices to mirror the model on, e.g. ["/gpu:0", "/gpu:1"];
    # null takes every local GPU (or the CPU when there is none).
    devices: list[str] | None = None
    # multiworker: where the cluster comes from: "tf_config" (the TF_CONFIG
    # variable, as launch/multiworker.sh sets it), "slurm" (the job step's tasks,
    # through SlurmClusterResolver) or "hosts" (the list below).
    cluster: str = "tf_config"
    port_base: int = 8888  # cluster=slurm: first port of the workers on each node
    # cluster=slurm: node k's workers take ports from port_base + k * node_port_offset
    # (0: the same ports on every node; set it when several nodes share one host).
    node_port_offset: int = 0
    hosts: list[str] | None = None  # cluster=hosts: every worker's "host:port", chief first
    task_index: int | None = None  # cluster=hosts: this worker's place in `hosts`
    # Without GPUs: split each process's CPU into this many logical devices that
    # stand in for GPUs (mirrored: one replica each; devices_per_replica=2: a
    # replica's two towers). To try both kinds of parallelism on a laptop.
    logical_cpus: int | None = None
    # 2: the paper's split inside every replica: tower a on the replica's first
    # device, tower b on its second (single, or horovod with one rank per pair of
    # GPUs); 1: the whole model on one device; K >= 2 with owt_hybrid: the 2014 hybrid.
    devices_per_replica: int = 1
    # model=owt over each replica's devices_per_replica devices as Krizhevsky's "One weird
    # trick" (2014): convolutions data-parallel, fc6-fc8 split by units (models/owt_hybrid.py)
    owt_hybrid: bool = False
    # horovod with owt_hybrid: K consecutive ranks (one GPU each) form one replica of the
    # hybrid instead of K devices of one process (distribute/rank_group.py)
    ranks_per_replica: int = 1
    collective: str = "auto"  # multiworker all-reduce: auto | ring | nccl
    # multiworker: how long a worker waits for the others to join (0: for ever)
    timeout_s: float = 300.0
    # multiworker and horovod: how long a peer may stop answering (hung, stopped, its node
    # gone) before the others stop naming it (0: for ever). Horovod counts it per
    # collective: it must also cover the chief's checkpoint writes between steps.
    peer_timeout_s: float = 60.0
    fp16_allreduce: bool = False  # horovod: send gradients as float16 (half the traffic)
    # horovod under horovodrun --min-np/--max-np: ranks may leave and join, the others go
    # on from the last commit with the same global batch (distribute/elastic.py)
    elastic: bool = False
    commit_every_steps: int = 10  # elastic: steps between in-memory commits of the state


@dataclass
class PrecisionConfig:
    # Keras dtype policy: "float32", "mixed_float16" (fp16 compute with dynamic loss
    # scaling) or "mixed_bfloat16" (bf16 compute); weights, logits, the loss and LRN
    # stay float32.
    policy: str = "float32"
    # mixed_float16: the loss is multiplied by the scale before the backward pass; a
    # step whose gradients overflow is skipped and the scale halved; after
    # loss_scale_growth_steps finite steps in a row it is doubled.
    initial_loss_scale: float = 32768.0
    loss_scale_growth_steps: int = 2000


@dataclass
class Config:
    name: str = "alexnet"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    distribute: DistributeConfig = field(default_factory=DistributeConfig)
    precision: PrecisionConfig = field(default_factory=PrecisionConfig)


VARIANTS = ("paper", "owt")
# The names of alexnet_dist.distribute.BACKENDS, here so that checking them needs no TensorFlow.
BACKENDS = ("single", "mirrored", "multiworker", "horovod")
CLUSTERS = ("tf_config", "slurm", "hosts")
COLLECTIVES = ("auto", "ring", "nccl")
INITS = ("paper", "he")
POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")
SCHEDULES = ("step", "plateau", "cosine")
SOURCES = ("shapes", "tfrecord", "tfds", "synthetic")
TRAIN_CROPS = ("paper", "inception")


def register() -> None:
    """Registers the schema with Hydra; conf/config.yaml's defaults start with `base_config`."""
    ConfigStore.instance().store(name="base_config", node=Config)


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
    # Imported here: those checks build on this module's schema and error.
    from alexnet_dist.config_placement import validate_placement

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
