"""`alexnet-train`: the Hydra entry point. Config in, run directory out; the work is in training/.

alexnet-train                                   # the built-in demo (see README)
alexnet-train model=paper data.resize_size=256  # the full-size 2012 network
alexnet-train data=tfrecord data.dir=/data/imagenet-records
"""

import json
import logging
import os
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from alexnet_dist import config
from alexnet_dist.distribute import stop_signals
from alexnet_dist.training import sweep

log = logging.getLogger("alexnet_dist")

config.register()
# TensorFlow's C++ info lines drown the progress lines; warnings still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

# The repo's conf/, installed as the package alexnet_dist.conf (see pyproject.toml).
CONFIG_PACKAGE = "pkg://alexnet_dist.conf"


def run(cfg: DictConfig, run_dir: str) -> dict:
    """Validates the composed config and trains; returns what `training.loop.train` returns."""
    schema_cfg: config.Config = OmegaConf.to_object(cfg)
    try:
        config.validate(schema_cfg)
    except config.ConfigError as e:
        raise SystemExit(f"alexnet-train: config error: {e}") from None
    # Import after validation: a config error should not wait for TensorFlow to load.
    from alexnet_dist.data.schema import ConversionError, DataError
    from alexnet_dist.distribute import peers
    from alexnet_dist.training.checkpoint import CheckpointError
    from alexnet_dist.training.loop import NonFiniteLossError, train

    logging.getLogger("absl").setLevel(logging.WARNING)
    log.info("run directory %s\n%s", run_dir, OmegaConf.to_yaml(cfg))
    try:
        return train(schema_cfg, run_dir)
    except (config.ConfigError, ConversionError, DataError, FileNotFoundError) as e:
        raise SystemExit(f"alexnet-train: error: {e}") from None
    except (NonFiniteLossError, CheckpointError) as e:
        raise SystemExit(f"alexnet-train: {e}") from None
    except Exception as e:
        lost = peers.lost_peer(e, cfg.distribute.peer_timeout_s, _worker_rank())
        if lost is None:
            raise
        print(f"alexnet-train: error: {lost}", file=sys.stderr, flush=True)
        raise SystemExit(peers.EXIT_PEER_LOST) from None


def _worker_rank() -> int:
    """This process's rank in a multi-process job, from what the launcher set (0 if none)."""
    for var in ("HOROVOD_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    try:
        return int(json.loads(os.environ.get("TF_CONFIG") or "{}")["task"]["index"])
    except (ValueError, KeyError, TypeError):
        return 0  # a malformed TF_CONFIG gets its own error later, naming what is wrong


def main() -> None:
    # Before TensorFlow starts any thread: distribute/stop_signals.py says why.
    stop_signals.hold()
    run_dir = os.environ.get("ALEXNET_RUN_DIR", "")
    if "${" in run_dir:
        # Hydra takes the variable as it is (conf/config.yaml), but copies the directory
        # into hydra.runtime.output_dir, which its log file's path and HydraConfig then
        # read as config: the ${...} would be resolved there, and the log go elsewhere.
        sys.exit(f"alexnet-train: ALEXNET_RUN_DIR={run_dir!r}: a run directory may not "
                 "contain '${' (Hydra would interpolate it); choose another path")  # fmt: skip
    rank = _worker_rank()
    if rank > 0:
        # All ranks share the run directory: one .hydra/ and one train.log, the chief's.
        sys.argv += [
            "hydra.output_subdir=null",
            f"hydra.job_logging.handlers.file.filename=${{hydra.runtime.output_dir}}/worker-{rank}.log",
        ]
    _hydra_main()


@hydra.main(version_base="1.3", config_path=CONFIG_PACKAGE, config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    result = run(cfg, HydraConfig.get().runtime.output_dir)
    if result["preempted"]:
        from alexnet_dist.training.preemption import EXIT_PREEMPTED

        sys.exit(EXIT_PREEMPTED)
    if not result["is_chief"]:
        return
    val = result["val"]
    hydra_cfg = HydraConfig.get()
    job = hydra_cfg.job.num if hydra_cfg.mode == RunMode.MULTIRUN else None
    sweep.write_result(result["run_dir"], result["step"], val, list(hydra_cfg.overrides.task), job)
    print(
        f"\nfinished at step {result['step']}: "
        f"validation top-1 {val.get('top1', float('nan')):.4f}, "
        f"top-5 {val.get('top5', float('nan')):.4f}\n"
        f"run directory  {result['run_dir']}\n"
        f"checkpoints    {', '.join(result['checkpoints'])}\n"
        f"best           {result['best'] or '-'}\n"
        f"tensorboard    {result['tensorboard']}\n"
        f"view with      tensorboard --logdir {result['tensorboard']}",
        flush=True,
    )


if __name__ == "__main__":
    main()
