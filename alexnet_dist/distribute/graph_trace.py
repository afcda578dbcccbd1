"""What a tf.function really ran where: its executed graphs, one per device, and what crossed.

TensorFlow places a function's ops when it first runs it, splits the graph into
one partition per device and joins them with send/receive pairs. `trace` runs a
fresh tf.function once with graph collection on and returns those partitions:
every op with the device it ran on, and the bytes of every tensor that went
from one device to another. The tests read placement from here, not from the
config; tools/bench_towers.py measures traffic with it.
"""

import collections
import dataclasses
import re

import tensorflow as tf
from tensorflow.python.eager import context  # run metadata has no public API


@dataclasses.dataclass
class Executed:
    # Every op of every partition: name -> (op type, device), e.g.
    # "gradients/alexnet_paper_1/conv2_b_1/..." -> ("Conv2DBackpropFilter", "CPU:1").
    ops: dict[str, tuple[str, str]]
    # Bytes sent from one device to another in one call: {("CPU:0", "CPU:1"): n}.
    transfers: collections.Counter
    # Tensors that crossed devices whose size could not be read from the function's graph.
    unsized: list[str]

    def devices(self) -> set[str]:
        return {device for _, device in self.ops.values()}


def _short(device: str) -> str:
    return device.rsplit("device:", 1)[-1]


def trace(fn, *args) -> Executed:
    """Calls the tf.function `fn(*args)` for the first time and returns what it executed.

    It must be the first call: TensorFlow collects a function's partitioned graphs
    only when it instantiates the function.
    """
    context.enable_graph_collection()
    context.enable_run_metadata()
    try:
        fn(*args)
        metadata = context.export_run_metadata()
    finally:
        context.disable_run_metadata()
        context.disable_graph_collection()
    graph = fn.get_concrete_function(*args).graph
    ops, transfers, unsized = {}, collections.Counter(), []
    for function in metadata.function_graphs:
        for partition in function.partition_graphs:
            for node in partition.node:
                ops[node.name] = (node.op, _short(node.device))
                if node.op != "_Recv":
                    continue
                route = (_short(node.attr["send_device"].s.decode()),
                         _short(node.attr["recv_device"].s.decode()))  # fmt: skip
                name = re.sub(r"^edge_\d+_", "", node.attr["tensor_name"].s.decode())
                size = _bytes(graph, name)
                if size is None:
                    unsized.append(name)
                else:
                    transfers[route] += size
    if not ops:
        raise RuntimeError("no executed graph was collected: was this the function's first call?")
    return Executed(ops, transfers, unsized)


def _bytes(graph: tf.Graph, tensor: str) -> int | None:
    name, _, index = tensor.partition(":")
    try:
        outputs = graph.get_operation_by_name(name).outputs
    except (KeyError, ValueError):
        return None
    t = outputs[int(index or 0)] if outputs else None
    if t is None or not t.shape.is_fully_defined() or t.dtype == tf.resource:
        return None
    return t.shape.num_elements() * t.dtype.size
