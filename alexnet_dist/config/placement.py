"""The configuration checks of model parallelism: which combinations of the paper's towers,
the 2014 hybrid, devices, ranks and backends can work (`validate` calls them)."""

from alexnet_dist.config.schema import Config, ConfigError

# What mirroring a two-device replica would cost (README, "the paper's two-GPU split at scale").
_MIRRORED_TOWERS = (
    "tf.distribute keeps each replica's copy of a variable on the replica's one device, so "
    "tower b's weights would be copied to its device and its gradients back every step "
    "(232 MB more per replica per step for the full-size network, measured with "
    "tools/mirrored_towers.py); use distribute=horovod, "
    "one rank per pair of devices"
)


def validate_placement(cfg: Config) -> None:
    """Model parallelism: which combinations of towers, devices and backends can work."""
    per_replica = cfg.distribute.devices_per_replica
    ranks = cfg.distribute.ranks_per_replica
    if ranks < 1 or (ranks > 1 and not cfg.distribute.owt_hybrid):
        raise ConfigError(
            f"distribute.ranks_per_replica={ranks}: more than one rank per replica is the 2014 "
            "hybrid over Horovod ranks (distribute=horovod distribute.owt_hybrid=true); "
            "otherwise leave it at 1"
        )
    if ranks > 1 and cfg.distribute.backend != "horovod":
        raise ConfigError(
            f"distribute.ranks_per_replica={ranks} groups Horovod ranks; it needs "
            f"distribute=horovod, not {cfg.distribute.backend}"
        )
    if cfg.distribute.owt_hybrid:
        _validate_owt_hybrid(cfg)
    elif per_replica not in (1, 2):
        raise ConfigError(
            f"distribute.devices_per_replica must be 1 or 2, got {per_replica!r} (more devices "
            "per replica: distribute.owt_hybrid=true with model=owt)"
        )
    if cfg.distribute.logical_cpus is not None and cfg.distribute.logical_cpus < 1:
        raise ConfigError(
            f"distribute.logical_cpus must be positive, got {cfg.distribute.logical_cpus!r}"
        )
    towers = cfg.model.tower_devices
    split = per_replica > 1 or ranks > 1 or bool(towers)
    if per_replica == 2 and cfg.model.variant != "paper" and not cfg.distribute.owt_hybrid:
        raise ConfigError(
            "distribute.devices_per_replica=2 places the paper network's two towers on two "
            f"devices, but model.variant={cfg.model.variant!r} has one tower (to spread it over "
            "devices the 2014 way: distribute.owt_hybrid=true)"
        )
    if per_replica == 2 and towers:
        raise ConfigError(
            "model.tower_devices and distribute.devices_per_replica=2 both place the towers; "
            "set one (devices_per_replica=2 chooses each replica's devices itself)"
        )
    if towers and cfg.distribute.backend != "single":
        raise ConfigError(
            f"model.tower_devices places the towers of a one-replica run; with "
            f"distribute={cfg.distribute.backend} use distribute.devices_per_replica=2"
        )
    if per_replica > 1 and cfg.distribute.backend in ("mirrored", "multiworker"):
        raise ConfigError(
            f"distribute.devices_per_replica={per_replica} does not work with "
            f"distribute={cfg.distribute.backend}: {_MIRRORED_TOWERS}"
        )
    if split and cfg.trainer.jit_compile:
        raise ConfigError(
            "trainer.jit_compile=true compiles a replica's step for one device; with a replica "
            "on several devices (distribute.devices_per_replica, model.tower_devices) or ranks "
            "(distribute.ranks_per_replica) leave it off"
        )


def _validate_owt_hybrid(cfg: Config) -> None:
    devices, ranks = cfg.distribute.devices_per_replica, cfg.distribute.ranks_per_replica
    k = max(devices, ranks)
    if cfg.model.variant != "owt":
        raise ConfigError(
            f"distribute.owt_hybrid=true spreads the one-tower network (model=owt) over devices, "
            f"but model.variant={cfg.model.variant!r}; the paper network's own split is "
            "distribute.devices_per_replica=2"
        )
    if k < 2:
        raise ConfigError(
            f"distribute.owt_hybrid=true spreads each replica over distribute.devices_per_replica"
            f" devices (or, with Horovod, distribute.ranks_per_replica ranks); set one of them "
            f"to 2 or more (they are {devices} and {ranks})"
        )
    if devices > 1 and ranks > 1:
        raise ConfigError(
            f"distribute.owt_hybrid=true over distribute.devices_per_replica={devices} devices "
            f"of one process or over distribute.ranks_per_replica={ranks} ranks: set one"
        )
    if cfg.distribute.elastic:
        raise ConfigError(
            "distribute.owt_hybrid=true does not work with distribute.elastic=true: a lost rank "
            "would take shards of the fully connected layers with it"
        )
    if cfg.distribute.backend not in ("single", "horovod"):
        raise ConfigError(
            f"distribute.owt_hybrid=true does not work with distribute={cfg.distribute.backend}:"
            " tf.distribute would keep a copy of every fully connected shard on every device; "
            "use distribute=single (one replica on K devices) or distribute=horovod (one rank "
            "per K devices)"
        )
    if cfg.model.tower_devices:
        raise ConfigError(
            "distribute.owt_hybrid=true takes its devices from distribute.devices_per_replica; "
            "leave model.tower_devices unset"
        )
    if cfg.data.global_batch_size % k:
        key = "devices_per_replica" if devices > 1 else "ranks_per_replica"
        raise ConfigError(
            f"data.global_batch_size={cfg.data.global_batch_size} does not split evenly over the "
            f"{k} devices of distribute.owt_hybrid=true (distribute.{key}={k}): each device "
            "runs the convolutions on an equal share"
        )
