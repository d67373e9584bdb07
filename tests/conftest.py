"""Shared fixtures: compose configs through Hydra's compose API, as the app does."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


def group_entries(group: str) -> list[str]:
    """Every entry of a config group: the group folder is the registry."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.fixture
def compose_cfg() -> Callable[..., DictConfig]:
    """compose_cfg("loss=dual_clip", ...) -> the composed config, as `python -m ppo_lab` sees it."""

    def _compose(*overrides: str) -> DictConfig:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose("config", overrides=list(overrides))

    return _compose
