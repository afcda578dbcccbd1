"""Distribution backends behind one interface (`Runtime`), chosen by `distribute.backend`."""

from alexnet_dist.config import DistributeConfig
from alexnet_dist.distribute import horovod, strategy
from alexnet_dist.distribute.runtime import Runtime

BACKENDS = {
    "single": strategy.single,
    "mirrored": strategy.mirrored,
    "multiworker": strategy.multiworker,
    "horovod": horovod.horovod,
}


def create_runtime(cfg: DistributeConfig) -> Runtime:
    """Builds the backend that `cfg.backend` names."""
    if cfg.backend not in BACKENDS:
        raise ValueError(
            f"distribute.backend={cfg.backend!r} is unknown; choose one of {sorted(BACKENDS)}"
        )
    return BACKENDS[cfg.backend](cfg)


__all__ = ["BACKENDS", "Runtime", "create_runtime"]
