"""The numerics driver: k training steps on fixed data through a backend, the weights saved.

    python -m alexnet_dist.cli.numerics BACKEND STEPS PER_REPLICA_BATCH OUT.npz \
        [fp16] [towers] [owt] [hybridK] [ranks] [placement] [lars|lamb] [bn|bn_local]

(under TF_CONFIG for multiworker, under horovodrun for horovod). What the options
mean, and why the weights of N replicas equal one replica's: doctor/numerics.py.
alexnet-doctor and the distribution tests run it.
"""

import os
import sys

import numpy as np
import tensorflow as tf

from alexnet_dist.doctor.numerics import config, run


def rank() -> str:
    return os.environ.get("HOROVOD_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0"))


def main(argv=None) -> int:
    argv = sys.argv if argv is None else argv
    backend, steps, per_replica, out = argv[1], int(argv[2]), int(argv[3]), argv[4]
    options = argv[5:]
    tf.config.experimental.enable_tensor_float_32_execution(False)
    hybrid = next((int(o[len("hybrid") :]) for o in options if o.startswith("hybrid")), 0)
    cfg = config(backend, "towers" in options, "fp16" in options, hybrid, "ranks" in options)
    placement_out = f"{out}.{rank()}.placement.json" if "placement" in options else None
    variant = "owt" if hybrid or "owt" in options else "paper"
    optim = next((o for o in options if o in ("lars", "lamb")), "sgd")
    batch_norm = "sync" if "bn" in options else "local" if "bn_local" in options else None
    weights = run(cfg, steps, per_replica, placement_out, variant, optim, batch_norm)
    if weights is not None:
        np.savez(out, *weights)
    return 0


if __name__ == "__main__":
    sys.exit(main())
