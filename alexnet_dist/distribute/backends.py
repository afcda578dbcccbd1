"""The one factory of distribution backends: `distribute.backend` -> a `Runtime`."""

from alexnet_dist.config import ConfigError, DistributeConfig
from alexnet_dist.distribute import devices, horovod, strategy
from alexnet_dist.distribute.placement import Placement
from alexnet_dist.distribute.runtime import Runtime


def _horovod(cfg: DistributeConfig) -> horovod.HorovodRuntime:
    if not cfg.elastic:
        return horovod.HorovodRuntime(cfg)
    horovod.import_horovod()  # the install hint, before elastic.py imports Horovod
    from alexnet_dist.distribute.elastic import ElasticHorovodRuntime

    return ElasticHorovodRuntime(cfg)


BACKENDS = {
    "single": strategy.single,
    "mirrored": strategy.mirrored,
    "multiworker": strategy.multiworker,
    "horovod": _horovod,
}


def create_runtime(cfg: DistributeConfig, tower_devices: list[str] | None = None) -> Runtime:
    """Builds the backend that `cfg.backend` names.

    `tower_devices` (model.tower_devices) places a one-replica run's towers on
    these devices; each must exist, or the error names it.
    """
    if cfg.backend not in BACKENDS:
        raise ConfigError(
            f"distribute.backend={cfg.backend!r} is unknown; choose one of {sorted(BACKENDS)}"
        )
    runtime = BACKENDS[cfg.backend](cfg)
    if tower_devices:
        towers = devices.check_exist(tower_devices, "model.tower_devices")
        runtime.placement = Placement(towers)
    return runtime
