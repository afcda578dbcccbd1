"""Trains k steps on fixed data through a distribution backend; the chief saves the weights.

    python -m alexnet_dist.cli.numerics BACKEND STEPS PER_REPLICA_BATCH OUT.npz \
        [fp16] [towers] [owt] [hybridK] [ranks] [placement]

(under TF_CONFIG for multiworker, under horovodrun for horovod)

Every backend sees the same global batches (fixed by a seed), each replica its
slice of them, so the weights after k steps of N replicas with batch b equal
those of one replica with batch N*b, up to float rounding, when the backend sums
gradients right. Dropout is off; everything else is the real model, optimizer,
step and runtime, at a small size (width 1/8, 67 pixels) that runs anywhere.

Devices: mirrored takes every local GPU, or two logical CPUs without GPUs;
`towers` puts each replica's two towers on two devices (devices_per_replica=2);
`owt` trains the one-tower network instead of the paper's, and `hybridK` (hybrid2,
hybrid4, ...) spreads it over K devices per replica as the 2014 paper does
(distribute.owt_hybrid), or with `ranks` over K Horovod ranks per replica
(distribute.ranks_per_replica); like every layout they start from the
one-device network's initial weights, and save the weights in its form;
Horovod gives each rank its own GPU (NCCL where Horovod was built with it) or
the CPU (Gloo). TensorFloat-32 is off, so that GPUs multiply in float32 like
the reference run does. `placement` also writes the op types that ran on each
device in the first step to OUT.<rank>.placement.json.
"""

import json

import keras
import numpy as np
import tensorflow as tf

from alexnet_dist.config import DistributeConfig, ModelConfig, OptimConfig
from alexnet_dist.distribute import graph_trace
from alexnet_dist.distribute.backends import create_runtime
from alexnet_dist.distribute.placement import build_model, one_device_form
from alexnet_dist.training.optimizer import build_optimizer, decays_itself
from alexnet_dist.training.step import make_train_step

IMAGE, CLASSES, GLOBAL_EXAMPLES_SEED = 67, 5, 1234
# Kernel and bias of each convolution and dense layer; AlexNet-BN: no conv biases, and each
# convolution's normalisation (gamma, beta and the moving mean and variance).
NUM_WEIGHTS = {"paper": 30, "owt": 16, "paper_bn": 60}


def global_batches(steps: int, global_batch: int):
    rng = np.random.default_rng(GLOBAL_EXAMPLES_SEED)
    images = rng.normal(0, 1, (steps, global_batch, IMAGE, IMAGE, 3)).astype(np.float32)
    labels = rng.integers(0, CLASSES, (steps, global_batch)).astype(np.int32)
    return images, labels


def run(
    cfg: DistributeConfig,
    steps: int,
    replica_batch: int,
    placement_out: str | None = None,
    variant: str = "paper",
    optim: str = "sgd",
    batch_norm: str | None = None,
):
    """The chief's weights after `steps` steps (None elsewhere). With `placement_out`,
    the op types that ran on each device in the first step, and the model's variables
    (shape, device), go there as JSON. `optim`: sgd, lars or lamb (optimizer.OPTIMIZERS).
    `batch_norm` (paper only): "sync" or "local", AlexNet-BN with the statistics of the
    global batch or of each replica's."""
    runtime = create_runtime(cfg)
    global_batch = replica_batch * runtime.num_replicas
    images, labels = global_batches(steps, global_batch)

    def dataset_fn(ctx: tf.distribute.InputContext):
        # Pipeline p feeds its local replicas their slices, in replica order.
        local = ctx.num_replicas_in_sync // ctx.num_input_pipelines
        first = ctx.input_pipeline_id * local
        chunks = [
            (images[s, r * replica_batch : (r + 1) * replica_batch],
             labels[s, r * replica_batch : (r + 1) * replica_batch])
            for s in range(steps)
            for r in range(first, first + local)
        ]  # fmt: skip
        xs, ys = zip(*chunks, strict=True)
        return tf.data.Dataset.from_tensor_slices((np.stack(xs), np.stack(ys)))

    # A large decay, so that a wrong split of it between replicas shows in the weights:
    # in the step for SGD, in the optimizer for LARS and LAMB (their rates depend on it).
    # LARS at 1.0 with a trust coefficient of 0.01 moves each layer by about 1 % a step.
    optim_cfg = OptimConfig(name=optim, weight_decay=0.05, trust_coefficient=0.01)
    lr = {"sgd": 0.05 * global_batch / 128, "lars": 1.0, "lamb": 0.01}[optim]

    def make_optimizer(m):
        return build_optimizer(optim_cfg, m, lr)

    network = ModelConfig(
        variant=variant, image_size=IMAGE, width=0.125, dropout=0.0, init="he",
        batch_norm=bool(batch_norm), sync_batch_norm=batch_norm == "sync",
    )  # fmt: skip
    with runtime.scope():
        keras.utils.set_random_seed(0)
        model = build_model(network, CLASSES, runtime.placement)
        optimizer = make_optimizer(model)
        form = one_device_form(model, optimizer, make_optimizer)
    step_decay = 0.0 if decays_itself(optim_cfg) else optim_cfg.weight_decay
    step = make_train_step(model, optimizer, runtime, global_batch, weight_decay=step_decay)
    for i, batch in enumerate(runtime.distribute_dataset(dataset_fn) if steps else []):
        if i == 0 and placement_out:
            ops = graph_trace.trace(step, batch).ops.values()
            ran = {d: sorted({t for t, dev in ops if dev == d}) for _, d in ops}
            held = {v.path: [list(v.shape), v.value.device] for v in model.trainable_variables}
            with open(placement_out, "w") as f:
                json.dump({"devices": runtime.placement.devices, "ops": ran, "variables": held}, f)
        else:
            step(batch)
    form.gather()  # every rank: a collective for the hybrid over ranks
    return [np.asarray(w) for w in form.model.get_weights()] if runtime.is_chief else None


def load(path: str) -> list[np.ndarray]:
    """The weights a run saved, in the model's order."""
    with np.load(path) as f:
        return [f[k] for k in sorted(f.files, key=lambda k: int(k.split("_")[1]))]


def relative_differences(got: list[np.ndarray], want: list[np.ndarray]) -> list[float]:
    """Per weight tensor: |got - want| / |want| (Frobenius norms)."""
    if len(got) != len(want) or any(g.shape != w.shape for g, w in zip(got, want, strict=True)):
        raise ValueError("the two runs saved weights of different shapes")
    return [
        float(np.linalg.norm(g - w) / np.linalg.norm(w)) for g, w in zip(got, want, strict=True)
    ]


def config(
    backend: str,
    towers: bool = False,
    fp16_allreduce: bool = False,
    hybrid: int = 0,
    over_ranks: bool = False,
) -> DistributeConfig:
    """The backend's configuration on this machine's devices (see the module docstring)."""
    gpus = tf.config.list_physical_devices("GPU")
    per_replica = 1 if over_ranks else hybrid or (2 if towers else 1)
    stand_ins = None
    if not gpus and (per_replica > 1 or backend == "mirrored"):
        stand_ins = max(per_replica, 2)  # logical CPUs stand in for GPUs
    return DistributeConfig(
        backend=backend,
        fp16_allreduce=fp16_allreduce,
        devices_per_replica=per_replica,
        owt_hybrid=bool(hybrid),
        ranks_per_replica=hybrid if over_ranks else 1,
        logical_cpus=stand_ins,
    )
