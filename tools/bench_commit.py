"""How long an elastic Horovod commit takes: the training state copied to host memory.

    .venv/bin/python tools/bench_commit.py

For the full-size paper and one-tower networks with 1,000 classes: the bytes a
commit copies (weights, momenta, the optimizer's counters) and the median time
of 5 copies after one untimed, as `distribute/elastic.py`'s CommittedState.save
makes them. On GPUs the copy crosses PCIe, so run it there for that figure.
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from alexnet_dist.models import build_alexnet  # noqa: E402
from alexnet_dist.training.optimizer import SGD  # noqa: E402


def main() -> None:
    for variant in ("paper", "owt"):
        model = build_alexnet(variant, num_classes=1000, image_size=227)
        optimizer = SGD(learning_rate=0.01, momentum=0.9)
        optimizer.build(model.trainable_variables)
        variables = model.variables + optimizer.variables
        size = sum(np.prod(v.shape) * np.dtype(v.dtype).itemsize for v in variables)
        times = []
        for _ in range(6):
            start = time.perf_counter()
            [np.array(v.numpy()) for v in variables]
            times.append(time.perf_counter() - start)
        print(f"{variant}: {size / 1e6:.1f} MB per commit, {np.median(times[1:]) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
