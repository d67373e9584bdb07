"""Every entry of every config group composes, validates and instantiates through Hydra."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from ppo_lab.advantages import gae
from ppo_lab.components import build
from ppo_lab.config import GROUPS, validate
from ppo_lab.losses import PPOLoss, policy, value
from ppo_lab.networks import ActorCritic
from ppo_lab.normalization import Normalizers

from helpers import group_entries

VECTOR_OBS = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
IMAGE_OBS = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)


def test_defaults_list_is_the_table_of_contents(compose_cfg):
    cfg = compose_cfg()
    for group in GROUPS:
        assert group in cfg, f"config.yaml must pick a default {group} entry"
    settings = validate(cfg)
    assert settings.run.batch_size == cfg.num_envs * cfg.num_steps
    assert cfg.env.id == "CartPole-v1"


SUB_GROUPS = ["loss/policy", "loss/value", "env/backend"]


@pytest.mark.parametrize(
    "override",
    [
        f"{g}={e}"
        for g in ("loss", "advantage", "normalization", "recipe", *SUB_GROUPS)
        for e in group_entries(g)
    ],
)
def test_every_entry_validates(compose_cfg, override):
    needs_schedule = ["+loss/kl_coef=adaptive"] if override == "loss/policy=kl_penalty" else []
    recipe = override.removeprefix("recipe=")
    its_env = [f"env={recipe}"] if recipe in group_entries("env") else []  # a recipe's domain
    validate(compose_cfg(override, *needs_schedule, *its_env))


def test_loss_sub_entries_build_the_named_functions(compose_cfg):
    loss = build(compose_cfg("loss=dual_clip", "loss/value=huber", "loss.value.delta=2.0").loss)
    assert isinstance(loss, PPOLoss)
    assert (loss.policy.func, loss.policy.keywords) == (
        policy.dual_clip,
        {"clip_eps": 0.2, "dual_clip": 3.0},
    )
    assert (loss.value.func, loss.value.keywords) == (value.huber, {"delta": 2.0})


def test_dotted_sub_group_choice_on_the_command_line_selects_the_entry():
    from ppo_lab.__main__ import dotted_group_overrides, sub_groups

    groups = sub_groups()
    assert {"loss/policy", "loss/value", "loss/kl_coef", "env/backend"} <= groups
    args = [
        "loss=dual_clip",
        "loss.value=clipped",
        "loss.value.clip_eps=0.1",
        "env.backend=envpool,gymnasium_sync",
        "+loss.value=x",
        "loss.value={_target_:a}",
    ]
    assert dotted_group_overrides(args, groups) == [
        "loss=dual_clip",
        "loss/value=clipped",
        "loss.value.clip_eps=0.1",
        "env/backend=envpool,gymnasium_sync",
        "+loss.value=x",
        "loss.value={_target_:a}",
    ]


def test_advantage_and_normalization_entries_build(compose_cfg):
    estimator = build(compose_cfg("advantage.lam=0.5").advantage)
    assert (estimator.func, estimator.keywords) == (gae, {"lam": 0.5})
    norm = build(
        compose_cfg("normalization=obs_reward").normalization,
        obs_shape=(3,),
        num_envs=2,
        gamma=0.9,
        device="cpu",
    )
    assert isinstance(norm, Normalizers) and norm.obs is not None and norm.reward is not None
    assert norm.advantage_scope == "minibatch" and norm.value_target is None


@pytest.mark.parametrize("entry", group_entries("optim"))
def test_optim_entries_instantiate(compose_cfg, entry):
    cfg = compose_cfg(f"optim={entry}")
    validate(cfg)
    layer = torch.nn.Linear(3, 2)
    optimizer = build(cfg.optim, params=layer.parameters())
    assert optimizer.param_groups[0]["lr"] == cfg.optim.lr
    before = layer.weight.detach().clone()
    layer(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    # Adam's first step moves a weight of gradient g = 1 by lr g / (|g| + eps) against its sign,
    # and AdamW's decay by lr wd w more
    lr, eps, wd = cfg.optim.lr, cfg.optim.eps, cfg.optim.get("weight_decay", 0.0)
    moved = before - layer.weight.detach()
    torch.testing.assert_close(moved, lr / (1 + eps) + lr * wd * before)


@pytest.mark.parametrize("entry", group_entries("network"))
def test_network_entries_instantiate(compose_cfg, entry):
    """Each network builds for the observations it claims and refuses the others clearly."""
    cfg = compose_cfg(f"network={entry}")
    built = []
    for obs_space in (VECTOR_OBS, IMAGE_OBS):
        try:
            net = build(
                cfg.network, observation_space=obs_space, action_space=gym.spaces.Discrete(3)
            )
        except ValueError as err:
            assert "network=" in str(err), "a mismatch error must say which network to use"
            continue
        assert isinstance(net, ActorCritic)
        obs = torch.as_tensor(np.stack([obs_space.sample() for _ in range(2)]))
        assert net.policy_params(obs).shape == (2, 3)
        assert net.value(obs).shape == (2,)
        built.append(obs_space)
    assert built, f"network={entry} builds for neither vector nor image observations"


@pytest.mark.parametrize("entry", group_entries("env"))
def test_env_entries_validate(compose_cfg, entry):
    validate(compose_cfg(f"env={entry}"))


@pytest.mark.parametrize("entry", ["cartpole", "gymnasium"])
def test_env_entries_instantiate(compose_cfg, entry):
    cfg = compose_cfg(f"env={entry}")
    envs = build(cfg.env, num_envs=2)
    try:
        obs = envs.reset(seed=0)
        assert obs.shape == (2, *envs.single_observation_space.shape)
        step = envs.step(np.array([envs.single_action_space.sample() for _ in range(2)]))
        assert step.reward.shape == (2,)
    finally:
        envs.close()


@pytest.mark.parametrize("entry", group_entries("logger"))
def test_logger_entries_instantiate(compose_cfg, entry, tmp_path):
    offline_off = ["logger.mode=disabled"] if entry == "wandb" else []
    cfg = compose_cfg(f"logger={entry}", *offline_off)
    validate(cfg)
    tracker = build(
        cfg.logger,
        run_dir=tmp_path,
        config={"a": 1},
        choices={"loss": "clip"},
        run_name="test",
        run_id="abc123",
    )
    tracker.log({"x": 1.0}, step=1)
    tracker.finish({"final_return": 1.0}, exit_code=0)


def test_wandb_mode_defaults_to_offline_and_follows_the_env(compose_cfg, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert compose_cfg().logger.mode == "offline"
    monkeypatch.setenv("WANDB_MODE", "online")
    assert compose_cfg().logger.mode == "online"
