"""A config that cannot work fails validation, naming the key."""

import re

import pytest
from omegaconf import OmegaConf

from alexnet_dist import config
from tests.helpers import compose_cfg


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
