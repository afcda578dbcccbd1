"""Which devices a process uses, and which of them each replica's towers go on.

Model parallelism gives every replica `devices_per_replica` devices: the
paper's tower a on the first and tower b on the second, or the 2014 hybrid's K.
The backends decide the devices here and hand them on as the runtime's
`placement.Placement`, where the model builder takes them.

Devices are GPUs where the process has them. Without GPUs, `logical_cpus`
splits the process's CPU into that many logical devices that stand in for GPUs:
the same placement, the same graphs, run on the same cores.
"""

import tensorflow as tf

from alexnet_dist.config import ConfigError


def use_logical_cpus(count: int | None) -> None:
    """Splits this process's CPU into `count` logical devices (before TensorFlow starts)."""
    if not count:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    wanted = [tf.config.LogicalDeviceConfiguration()] * count
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == count:
        return  # already split this way (a test process, a second runtime)
    try:
        tf.config.set_logical_device_configuration(cpu, wanted)
    except RuntimeError:
        raise ConfigError(
            f"distribute.logical_cpus={count}: TensorFlow's devices were set up before "
            f"the split (this process has {len(tf.config.list_logical_devices('CPU'))} "
            "logical CPUs); set it before anything runs on TensorFlow"
        ) from None


def accelerators() -> tuple[str, list[str]]:
    """("GPU", ["/gpu:0", ...]) where this process sees GPUs, else its (logical) CPUs."""
    for kind in ("GPU", "CPU"):
        devices = tf.config.list_logical_devices(kind)
        if devices:
            return kind, [f"/{kind.lower()}:{i}" for i in range(len(devices))]
    raise ConfigError("TensorFlow sees no device at all")


def prefetched_to(device: str, dataset_fn):
    """dataset_fn, with its batches copied to `device` ahead of the step that takes them.

    With one device per process (single, Horovod) TensorFlow would otherwise copy
    each batch to the GPU inside the step, while the GPU waits. (tf.distribute's
    mirrored strategies do this themselves.) On CPU the copy is a no-op, so the
    tests run the same path.
    """

    def fetched(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
        ds = dataset_fn(ctx)
        # The copy is a new pipeline that does not inherit the input's options
        # (its autotuning choice among them): carry them over.
        return ds.apply(tf.data.experimental.prefetch_to_device(device, 2)).with_options(
            ds.options()
        )

    return fetched


def check_exist(devices: list[str], key: str) -> list[str]:
    """The devices, if each exists in this process; else an error naming the first that does not.

    TensorFlow's soft placement would quietly run ops meant for a missing device
    on another one: a run asking for the paper's split on a one-GPU node would
    train on one device without a word.
    """
    present = {_canonical(d.name) for d in tf.config.list_logical_devices()}
    for device in devices:
        if _canonical(device) not in present:
            names = sorted(d.name.split("device:")[-1] for d in tf.config.list_logical_devices())
            raise ConfigError(
                f"{key}: device {device!r} does not exist in this process (it has "
                f"{', '.join(names)}); on a machine without GPUs, distribute.logical_cpus=N "
                "splits the CPU into N stand-in devices"
            )
    return list(devices)


def _canonical(name: str) -> tuple[str, int]:
    spec = tf.DeviceSpec.from_string(name)
    return (spec.device_type or "").upper(), spec.device_index or 0


def replica_devices(
    devices: list, replica: int, replicas_here: int, per_replica: int, kind: str
) -> list:
    """The devices of local replica `replica` of `replicas_here`: a consecutive group of them.

    Replica r gets devices [per_replica * r, per_replica * (r + 1)). If the host
    has too few for all its replicas, the error names both counts.
    """
    needed = per_replica * replicas_here
    if needed > len(devices):
        hint = (
            "distribute.logical_cpus splits the CPU into stand-in devices"
            if kind == "CPU"
            else f"start at most {len(devices) // per_replica} processes per host"
        )
        raise ConfigError(
            f"distribute.devices_per_replica={per_replica} with {replicas_here} replica(s) on "
            f"this host needs {needed} {kind} devices, but it has {len(devices)}; {hint}"
        )
    return devices[per_replica * replica : per_replica * (replica + 1)]


def split_host(devices: list[str], per_replica: int, kind: str) -> None:
    """A host whose devices are all shared out must have a multiple of `per_replica` of them."""
    if len(devices) % per_replica:
        raise ConfigError(
            f"distribute.devices_per_replica={per_replica}: this host has {len(devices)} "
            f"{kind} devices, which do not split into groups of {per_replica}"
        )


def rank_devices(gpus: list, local_rank: int, local_size: int, per_replica: int) -> list:
    """The GPUs of one process of a job with one replica per process (Horovod).

    A process that sees exactly its share (the scheduler bound them, as `srun
    --gpus-per-task` does) takes them all; otherwise local rank r of a host takes
    GPUs [per_replica * r, per_replica * (r + 1)) of the host's.
    """
    if len(gpus) == per_replica:
        return list(gpus)
    if per_replica == 1:
        return [gpus[local_rank % len(gpus)]]
    split_host(gpus, per_replica, "GPU")
    return replica_devices(gpus, local_rank, local_size, per_replica, "GPU")
