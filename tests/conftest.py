"""Shared fixtures: compose configs through Hydra's compose API, as the app does."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from omegaconf import DictConfig

from helpers import compose_config

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture
def compose_cfg() -> Callable[..., DictConfig]:
    """compose_cfg("loss=dual_clip", ...) -> the composed config, as `python -m ppo_lab` sees it."""
    return compose_config
