"""The multi-worker cluster: TF_CONFIG built in one place, read and checked in one place.

TF_CONFIG is the JSON that MultiWorkerMirroredStrategy reads:
`{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}`.
Worker 0 is the chief. A malformed TF_CONFIG is an error that says what is wrong
before any worker starts waiting for the others.
"""

import json
import os

from alexnet_dist.config import ConfigError


def tf_config(workers: list[str], index: int) -> dict:
    """The TF_CONFIG of worker `index` of a cluster of `workers` ("host:port" each)."""
    if not workers:
        raise ConfigError("a multi-worker cluster needs at least one worker address")
    for address in workers:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"worker address {address!r} is not host:port")
    if not 0 <= index < len(workers):
        raise ConfigError(f"task index {index} is outside the {len(workers)} workers")
    return {"cluster": {"worker": list(workers)}, "task": {"type": "worker", "index": index}}


# distribute.port_base=null on Slurm: job j's workers take ports from
# JOB_PORT_FIRST + (j mod JOB_PORT_SLOTS) * JOB_PORT_SPAN, so that two jobs on one node
# use different ports (unless their ids differ by a multiple of 2,000), and no one can
# aim at a fixed default. A requeued job keeps its id, so its ports.
JOB_PORT_FIRST = 20_000
JOB_PORT_SLOTS = 2_000
JOB_PORT_SPAN = 16  # workers per node


def job_port_base(environ=os.environ) -> int:
    """The first port of this Slurm job's workers (see JOB_PORT_FIRST)."""
    job = environ.get("SLURM_JOB_ID", "")
    if not job.isdigit():
        raise ConfigError(
            "distribute.port_base=null takes the ports from the Slurm job's id, and "
            f"SLURM_JOB_ID is {job!r}: run under Slurm, or set distribute.port_base"
        )
    return JOB_PORT_FIRST + (int(job) % JOB_PORT_SLOTS) * JOB_PORT_SPAN


def from_slurm(port_base: int | None, node_port_offset: int = 0) -> dict:
    """The TF_CONFIG of this task of a Slurm job step (one worker per task).

    SlurmClusterResolver reads SLURM_PROCID, SLURM_STEP_NUM_TASKS,
    SLURM_STEP_NODELIST and SLURM_STEP_TASKS_PER_NODE, and gives the tasks of a
    node consecutive ports from `port_base`. It splits the node's GPUs between
    its tasks through CUDA_VISIBLE_DEVICES. With `node_port_offset`, the k-th
    node's ports start at port_base + k * node_port_offset instead, so that
    nodes that share one host (an emulated cluster) do not collide. port_base None:
    the job's own (`job_port_base`).
    """
    import tensorflow as tf

    if "SLURM_PROCID" not in os.environ:
        raise ConfigError(
            "distribute.cluster=slurm needs a Slurm job step (SLURM_PROCID is not set): "
            "start the workers with srun, as slurm/multiworker.sbatch does"
        )
    if port_base is None:
        port_base = job_port_base()
    gpus = len(tf.config.list_physical_devices("GPU"))
    if gpus:
        resolver = tf.distribute.cluster_resolver.SlurmClusterResolver(
            port_base=port_base, gpus_per_node=gpus
        )
    else:
        # CPU nodes: the resolver insists on dealing out GPUs; give it one notional
        # GPU per task and keep it away from CUDA_VISIBLE_DEVICES.
        tasks = int(os.environ.get("SLURM_STEP_NUM_TASKS") or os.environ.get("SLURM_NTASKS", 1))
        resolver = tf.distribute.cluster_resolver.SlurmClusterResolver(
            port_base=port_base, gpus_per_node=tasks, gpus_per_task=1, auto_set_gpu=False
        )
    workers = resolver.cluster_spec().as_dict()["worker"]  # sets resolver.task_id
    if node_port_offset:
        hosts = list(dict.fromkeys(w.rpartition(":")[0] for w in workers))  # node order
        workers = [
            f"{host}:{int(port) + hosts.index(host) * node_port_offset}"
            for host, _, port in (w.rpartition(":") for w in workers)
        ]
    return tf_config(workers, resolver.task_id)


def read_tf_config(environ=os.environ) -> dict:
    """Parses and checks the TF_CONFIG environment variable; ConfigError says what is wrong."""
    raw = environ.get("TF_CONFIG")
    if not raw:
        raise ConfigError(
            "distribute.backend=multiworker with distribute.cluster=tf_config needs the "
            "TF_CONFIG environment variable (launch/multiworker.sh sets it; or use "
            "distribute.cluster=slurm or distribute.cluster=hosts)"
        )
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({e}): {raw[:200]!r}") from None
    try:
        workers = parsed["cluster"]["worker"]
        task_type = parsed["task"]["type"]
        index = parsed["task"]["index"]
    except (KeyError, TypeError):
        raise ConfigError(
            'TF_CONFIG must look like {"cluster": {"worker": ["host:port", ...]}, '
            f'"task": {{"type": "worker", "index": 0}}}}, got {raw[:200]!r}'
        ) from None
    if task_type != "worker" or set(parsed["cluster"]) - {"worker"}:
        raise ConfigError(f"TF_CONFIG: only 'worker' tasks are supported, got {raw[:200]!r}")
    if not isinstance(index, int):
        raise ConfigError(f"TF_CONFIG task index must be an integer, got {index!r}")
    return tf_config(workers, index)
