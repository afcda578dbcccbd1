"""Every config group composes into the typed schema; bad values fail early, naming the key."""

import importlib.resources
import itertools
import re

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from alexnet_dist import config
from tests.helpers import run_cli


def groups(name):
    folder = importlib.resources.files("alexnet_dist.conf") / name
    return sorted(f.name[:-5] for f in folder.iterdir() if f.name.endswith(".yaml"))


def compose_cfg(overrides):
    config.register()  # what alexnet_dist.train does on import
    with initialize_config_module("alexnet_dist.conf", version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


@pytest.mark.parametrize(
    "model, data, trainer, experiment",
    list(
        itertools.product(
            groups("model"), groups("data"), groups("trainer"), ["none", *groups("experiment")]
        )
    ),
)
def test_every_group_composes_and_validates(model, data, trainer, experiment):
    overrides = [f"model={model}", f"data={data}", f"trainer={trainer}", "data.dir=/records"]
    overrides += ["data.name=imagenette"] if data == "tfds" else []
    overrides += ["~experiment"] if experiment == "none" else [f"experiment={experiment}"]
    if data == "shapes":
        overrides.append("data.resize_size=256")  # full-size models crop 224/227
    cfg = OmegaConf.to_object(compose_cfg(overrides))
    assert isinstance(cfg, config.Config)
    config.validate(cfg)


@pytest.mark.parametrize("overlay", groups("debug"))
def test_debug_overlays_compose(overlay):
    cfg = OmegaConf.to_object(compose_cfg([f"debug={overlay}"]))
    config.validate(cfg)
    assert cfg.trainer.epochs <= 2


def test_default_is_the_demo():
    cfg = OmegaConf.to_object(compose_cfg([]))
    assert (cfg.model.variant, cfg.model.width, cfg.model.image_size) == ("paper", 0.5, 99)
    assert cfg.data.source == "shapes"


def test_paper_imagenet_is_the_papers_recipe():
    cfg = OmegaConf.to_object(compose_cfg(["experiment=paper_imagenet", "data.dir=/records"]))
    config.validate(cfg)
    assert (cfg.model.variant, cfg.model.width, cfg.model.image_size) == ("paper", 1.0, 227)
    assert (cfg.model.init, cfg.model.dropout) == ("paper", 0.5)
    assert (cfg.data.source, cfg.data.resize_size, cfg.data.std) == ("tfrecord", 256, [1, 1, 1])
    data = cfg.data
    assert (data.global_batch_size, data.lighting_std, data.eval_crops) == (128, 0.1, 10)
    optim = cfg.optim
    assert (optim.lr, optim.momentum, optim.weight_decay) == (0.01, 0.9, 5e-4)
    assert (optim.schedule, optim.decay_factor, optim.plateau_max_drops) == ("plateau", 0.1, 3)
    assert cfg.trainer.epochs == 90 and cfg.name == "paper_imagenet"


def test_unknown_key_and_wrong_type_fail_in_composition():
    with pytest.raises(Exception, match="batchsize"):
        compose_cfg(["data.batchsize=3"])
    with pytest.raises(Exception, match="global_batch_size"):
        OmegaConf.to_object(compose_cfg(["data.global_batch_size=lots"]))


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["data.global_batch_size=0"], "data.global_batch_size must be positive"),
        (["data.eval_batch_size=-5"], "data.eval_batch_size must be positive"),
        (["model.variant=vgg"], "model.variant"),
        (["model.image_size=300"], "model.image_size=300 is larger than data.resize_size=112"),
        (["data=tfrecord"], "data.dir"),
        (["optim.momentum=1.5"], "optim.momentum"),
        (["trainer.max_steps=0"], "trainer.max_steps must be positive"),
        (["optim.schedule=exponential"], "optim.schedule must be one of"),
        (["optim.label_smoothing=1.0"], "optim.label_smoothing must be in [0, 1)"),
        (["data.eval_crops=5"], "data.eval_crops must be 1 or 10"),
        (["precision.policy=float16"], "precision.policy must be one of"),
        (["trainer.profile_steps=[5,2]"], "trainer.profile_steps must be [first, last]"),
        (["precision=mixed_float16", "precision.initial_loss_scale=0"], "initial_loss_scale"),
        (["distribute=multiworker", "distribute.peer_timeout_s=-1"], "distribute.peer_timeout_s"),
        (["distribute=multiworker", "distribute.elastic=true"], "distribute=horovod"),
        (
            ["distribute=horovod", "distribute.elastic=true", "data=synthetic"],
            "data.source=tfrecord",
        ),
        (
            ["distribute=horovod", "distribute.elastic=true", "data.deterministic=false"],
            "data.deterministic=true",
        ),  # fmt: skip
        (
            ["distribute=horovod", "distribute.elastic=true", "distribute.commit_every_steps=0"],
            "distribute.commit_every_steps",
        ),  # fmt: skip
    ],
)
def test_validate_names_the_key(overrides, key):
    cfg = compose_cfg(overrides)
    if OmegaConf.is_missing(cfg.data, "dir"):
        cfg.data.dir = None
    with pytest.raises(config.ConfigError, match=re.escape(key)):
        config.validate(OmegaConf.to_object(cfg))


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "data.global_batch_size=0",
            "alexnet-train: config error: data.global_batch_size must be positive, got 0",
        ),
        ("data.batchsize=3", "Key 'batchsize' not in 'DataConfig'"),
        ("model.width=wide", "model.width"),
    ],
)
def test_entry_point_rejects_bad_config_before_any_work(tmp_path, override, message):
    result = run_cli(
        ["-m", "alexnet_dist.train", override, f"hydra.run.dir={tmp_path}/run",
         f"data.cache_dir={tmp_path}/cache"],
        timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    assert not (tmp_path / "cache").exists()  # failed before generating any data
    assert not (tmp_path / "run" / "checkpoints").exists()
