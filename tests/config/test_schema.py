"""Every config group composes into the typed schema; unknown keys and wrong types fail."""

import importlib.resources
import itertools

import pytest
from omegaconf import OmegaConf

from alexnet_dist import config
from alexnet_dist.models.alexnet import build_alexnet
from alexnet_dist.training.lars import LARS
from alexnet_dist.training.optimizer import scaled_lr
from tests.helpers import compose_cfg


def groups(name):
    folder = importlib.resources.files("alexnet_dist.conf") / name
    return sorted(f.name[:-5] for f in folder.iterdir() if f.name.endswith(".yaml"))


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


def test_lars_alexnet_bn_8k_is_the_lars_authors_solver():
    cfg = OmegaConf.to_object(compose_cfg(["experiment=lars_alexnet_bn_8k", "data.dir=/records"]))
    config.validate(cfg)
    assert (cfg.model.variant, cfg.model.batch_norm, cfg.model.image_size) == ("paper", True, 227)
    assert (cfg.data.global_batch_size, cfg.data.lighting_std, cfg.data.eval_crops) == (8192, 0, 1)
    optim = cfg.optim
    assert (optim.name, optim.schedule, optim.poly_power) == ("lars", "poly", 2.0)
    assert (optim.momentum, optim.weight_decay, optim.trust_coefficient) == (0.9, 5e-4, 0.001)
    # The solver's base lr 10 at 8K, its 600 warmup iterations, its 100 epochs.
    assert scaled_lr(optim, 8192) == 10.0
    assert round(optim.warmup_epochs * (1_281_167 // 8192)) == 600
    assert cfg.trainer.epochs == 100 and cfg.name == "lars_alexnet_bn_8k"
    # Biases are adapted and decayed, as the solver does it; only the normalisation's
    # gamma and beta are left out.
    model = build_alexnet("paper", 10, 67, width=0.125, batch_norm=True)
    lars = LARS(0.1, exclude=optim.exclude_from_adaptation)
    excluded = [v.path for v in model.trainable_variables if lars.excluded(v)]
    assert excluded and all(p.endswith(("gamma", "beta")) for p in excluded)
    assert any(v.path.endswith("bias") for v in model.trainable_variables)
    assert len(excluded) == sum(p.endswith(("gamma", "beta")) for p in
                                (v.path for v in model.trainable_variables))  # fmt: skip
