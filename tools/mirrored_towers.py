"""Why distribute=mirrored cannot hold a replica on two devices: the bytes it would move.

    .venv/bin/python tools/mirrored_towers.py [--width 1.0] [--batch 2]

MirroredStrategy keeps each replica's copy of a variable on that replica's one
device. This builds two mirrored replicas on four logical CPUs, puts each
replica's tower b on a second device anyway (what devices_per_replica=2 would
need), runs one training step and reads from the executed graphs how many
bytes went between each replica's two devices. It compares that with the same
network and batch in one replica whose tower-b weights live on tower b's
device (distribute.devices_per_replica=2 under the single and horovod backends).
"""

import argparse
import contextlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from alexnet_dist.config import DistributeConfig, OptimConfig  # noqa: E402
from alexnet_dist.distribute import devices, graph_trace  # noqa: E402
from alexnet_dist.distribute.backends import create_runtime  # noqa: E402
from alexnet_dist.models import alexnet  # noqa: E402
from alexnet_dist.models.traffic import tower_traffic  # noqa: E402
from alexnet_dist.training.optimizer import build_optimizer  # noqa: E402
from alexnet_dist.training.step import make_train_step  # noqa: E402


def _per_replica_scope(tower: str):
    """Replica r's tower a on /cpu:2r, tower b on /cpu:2r+1 (what the model cannot ask for)."""
    context = tf.distribute.get_replica_context()
    if tower is None or context is None:
        return contextlib.nullcontext()
    replica = context.replica_id_in_sync_group
    replica = tf.get_static_value(replica) if tf.is_tensor(replica) else replica
    return tf.device(f"/cpu:{2 * int(replica) + (tower == 'b')}")


def crossing_bytes(runtime, args, tower_devices) -> dict:
    model = alexnet.build_alexnet("paper", 1000, None, args.width, tower_devices=tower_devices)
    with runtime.scope():
        optimizer = build_optimizer(OptimConfig(), model, 0.01)
    step = make_train_step(model, optimizer, runtime, args.batch * runtime.num_replicas, 5e-4)
    size = model.image_size
    images = tf.random.normal((args.batch * runtime.num_replicas, size, size, 3))
    labels = tf.zeros((args.batch * runtime.num_replicas,), tf.int32)
    data = tf.data.Dataset.from_tensors((images, labels))
    batch = next(iter(runtime.distribute_dataset(lambda _: data.unbatch().batch(args.batch))))
    return graph_trace.trace(step, batch).transfers, tower_traffic(model)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=2, help="per replica")
    args = parser.parse_args(argv)
    devices.use_logical_cpus(4)

    towers, traffic = crossing_bytes(
        create_runtime(DistributeConfig(devices_per_replica=2, logical_cpus=4)), args,
        ["/cpu:0", "/cpu:1"],
    )  # fmt: skip
    alexnet.device_scope = _per_replica_scope  # the per-replica placement mirrored lacks
    mirrored = create_runtime(DistributeConfig(backend="mirrored", devices=["/cpu:0", "/cpu:2"]))
    with mirrored.scope():
        mirrored_transfers, _ = crossing_bytes(mirrored, args, ["a", "b"])

    def mb(n: float) -> str:
        return f"{n / 1e6:.1f} MB"

    print(f"paper AlexNet, width {args.width}, batch {args.batch} per replica, one step, float32")
    print(
        f"  from the shapes: cross-links {mb(traffic.crosslink_bytes_per_image * args.batch)}, "
        f"images to tower b {mb(traffic.input_bytes_per_image * args.batch)}, "
        f"tower b's weights {mb(traffic.allreduce_bytes['b'])}"
    )
    one = towers[("CPU:0", "CPU:1")] + towers[("CPU:1", "CPU:0")]
    print(f"  towers in one replica (devices_per_replica=2): {mb(one)} between its devices")
    for r in range(2):
        b = f"CPU:{2 * r + 1}"
        moved = sum(n for (src, dst), n in mirrored_transfers.items() if b in (src, dst))
        print(f"  mirrored replica {r}, tower b on {b}: {mb(moved)} to and from {b}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
