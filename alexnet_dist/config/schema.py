"""The typed schema behind conf/: one dataclass per config group.

The schema is registered in Hydra's ConfigStore as `base_config`, and
conf/config.yaml lists it first in its defaults, so every YAML file and every
command-line override is merged into these dataclasses: an unknown key or a
value of the wrong type fails before any work, naming the key. What types
cannot check (positive sizes, known choices, sizes that fit) is validation.py's.
"""

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore

# Input normalisation, in 0-255 pixel units. The paper subtracts the mean image from
# raw pixels and does not rescale them: its N(0, 0.01) initialisation is sized for
# inputs of that magnitude. ImageNet's per-channel mean stands in for the mean image,
# and a std of 1 keeps the pixel scale; He-initialised models want unit-variance
# inputs (IMAGENET_STD).
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
PIXEL_STD = (1.0, 1.0, 1.0)


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
    # AlexNet-BN (model=paper_bn): batch normalisation after each convolution, no LRN.
    batch_norm: bool = False
    # Its statistics over the global batch, every replica's images (else each replica's own).
    sync_batch_norm: bool = False


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
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(PIXEL_STD))
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
    # Image files from other people (alexnet-convert, alexnet-predict, the exported model)
    # above these are refused before they are decoded: pixels as the header declares them
    # (Pillow's own threshold, 89.5 megapixels: 7 x a 12-megapixel photograph), and bytes.
    max_image_pixels: int = 89_478_485
    max_image_bytes: int = 64 * 1024 * 1024


@dataclass
class OptimConfig:
    # sgd: the paper's; lars: layer-wise adaptive rates (training/lars.py); lamb: lamb.py
    name: str = "sgd"
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
    poly_power: float = 2.0  # schedule=poly: lr * (1 - t) ** poly_power after the warmup
    trust_coefficient: float = 0.001  # LARS's eta
    # Variables (by path) that LARS leaves out of the adaptation and the decay, and LAMB
    # out of the decay: biases and normalisation parameters.
    exclude_from_adaptation: str = "bias|gamma|beta"
    beta_1: float = 0.9  # LAMB's moments
    beta_2: float = 0.999
    epsilon: float = 1.0e-6


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
    # runs on one GPU, off on CPU, where it is slower (distribute/placement.py).
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
    # cluster=slurm: first port of the workers on each node; null: one of the job's own,
    # from SLURM_JOB_ID (distribute/cluster.job_port_base), not a default others can guess.
    port_base: int | None = None
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
    # trick" (2014): convolutions data-parallel, fc6-fc8 split by units (distribute/owt_hybrid.py)
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
SCHEDULES = ("step", "plateau", "cosine", "poly")
OPTIMIZERS = ("sgd", "lars", "lamb")
SOURCES = ("shapes", "tfrecord", "tfds", "synthetic")
TRAIN_CROPS = ("paper", "inception")


def register() -> None:
    """Registers the schema with Hydra; conf/config.yaml's defaults start with `base_config`."""
    ConfigStore.instance().store(name="base_config", node=Config)
