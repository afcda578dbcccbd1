"""Distribution backends behind one interface (`Runtime`), chosen by `distribute.backend`."""

from alexnet_dist.config import DistributeConfig
from alexnet_dist.distribute import devices, horovod, strategy
from alexnet_dist.distribute.runtime import Runtime

BACKENDS = {
    "single": strategy.single,
    "mirrored": strategy.mirrored,
    "multiworker": strategy.multiworker,
    "horovod": horovod.horovod,
}


def create_runtime(cfg: DistributeConfig, tower_devices: list[str] | None = None) -> Runtime:
    """Builds the backend that `cfg.backend` names.

    `tower_devices` (model.tower_devices) places a one-replica run's towers on
    these devices; each must exist, or the error names it.
    """
    if cfg.backend not in BACKENDS:
        raise ValueError(
            f"distribute.backend={cfg.backend!r} is unknown; choose one of {sorted(BACKENDS)}"
        )
    runtime = BACKENDS[cfg.backend](cfg)
    if tower_devices:
        runtime.tower_devices = devices.check_exist(tower_devices, "model.tower_devices")
    return runtime


__all__ = ["BACKENDS", "Runtime", "create_runtime"]
