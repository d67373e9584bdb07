"""The loop's plumbing (bootstrapping, separate networks) and a real training run that learns."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from ppo_lab.checkpoint import load_checkpoint
from ppo_lab.components import ConfigError
from ppo_lab.networks import mlp
from ppo_lab.normalization import normalizers
from ppo_lab.rollout import Rollout
from ppo_lab.train import evaluate_rollout, explained_variance

from helpers import REPO, compose_config, vector_env

OBS = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
NO_NORMALIZATION = normalizers((3,), 2, 0.99, "cpu", advantage_scope="none")

CLEANRL_METRICS = {
    "charts/episodic_return",
    "charts/episodic_length",
    "charts/SPS",
    "charts/learning_rate",
    "losses/policy_loss",
    "losses/value_loss",
    "losses/entropy",
    "losses/approx_kl",
    "losses/clipfrac",
    "losses/explained_variance",
}


def test_next_values_bootstrap_from_the_true_final_observation():
    torch.manual_seed(0)
    agent = mlp(OBS, gym.spaces.Discrete(2))
    buf = Rollout.allocate(3, 2, OBS, gym.spaces.Discrete(2), torch.device("cpu"))
    buf.obs.uniform_(-1, 1)
    buf.last_obs.uniform_(-1, 1)
    final_obs = torch.full((1, 3), 0.7)
    buf.truncations.append((1, torch.tensor([0]), final_obs))  # env 0 hit a time limit at t=1

    evaluated = evaluate_rollout(agent, buf, NO_NORMALIZATION)

    next_values = evaluated.next_values
    with torch.no_grad():
        values = agent.value(buf.obs.reshape(6, 3)).view(3, 2)
        torch.testing.assert_close(evaluated.values, values)
        torch.testing.assert_close(next_values[0], values[1])  # V(s_{t+1}) inside the rollout
        torch.testing.assert_close(next_values[1, 0], agent.value(final_obs)[0])
        torch.testing.assert_close(next_values[1, 1], values[2, 1])  # untouched env
        torch.testing.assert_close(next_values[2], agent.value(buf.last_obs))  # rollout edge


def test_critic_only_backward_leaves_the_actor_without_gradient():
    agent = mlp(OBS, gym.spaces.Discrete(2), shared=False)
    agent.value(torch.randn(5, 3)).sum().backward()
    actor = [*agent.actor_encoder.parameters(), *agent.head.parameters()]
    assert all(p.grad is None for p in actor)
    assert all(p.grad is not None for p in agent.critic_encoder.parameters())


def test_explained_variance_closed_forms():
    target = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert explained_variance(target, target) == pytest.approx(1.0)
    assert explained_variance(torch.full((4,), 2.5), target) == pytest.approx(0.0)
    assert np.isnan(explained_variance(target, torch.ones(4)))


@pytest.mark.slow
def test_default_run_learns_cartpole_and_writes_its_outputs(tmp_path):
    """`python -m ppo_lab` as a user runs it (W&B offline), on its default budget."""
    run_dir = tmp_path / "run"
    default = compose_config()
    updates = default.total_timesteps // (default.num_envs * default.num_steps)
    result = subprocess.run(
        [sys.executable, "-m", "ppo_lab", f"hydra.run.dir={run_dir}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "WANDB_MODE": "offline"},
    )
    assert result.returncode == 0, result.stderr[-3000:]

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished"
    assert summary["final_return"] >= 475 and summary["solved"], summary  # as README says
    assert summary["eval_return"] >= 475, summary
    assert summary["choices"]["loss"] == "clip" and summary["choices"]["env"] == "cartpole"
    assert summary["global_step"] == updates * 256

    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all("global_step" in r for r in records)
    steps = [r["global_step"] for r in records if "charts/SPS" in r]
    assert steps == sorted(steps) and len(steps) == updates
    logged = set().union(*records)
    assert logged >= CLEANRL_METRICS, CLEANRL_METRICS - logged
    returns = [r["charts/episodic_return"] for r in records if "charts/episodic_return" in r]
    assert np.mean(returns[-5:]) > 4 * np.mean(returns[:5]), "the return must improve"

    checkpoint = load_checkpoint(run_dir / "checkpoint.pt")
    assert checkpoint["global_step"] == summary["global_step"]
    assert_saved_policy_reproduces_the_evaluation(run_dir / "checkpoint.pt", summary)

    wandb_runs = list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(wandb_runs) == 1, "a real offline W&B run that `wandb sync` can upload"
    assert_wandb_run_holds_the_metrics(wandb_runs[0].parent, summary)


def assert_saved_policy_reproduces_the_evaluation(path: Path, summary: dict) -> None:
    from ppo_lab.evaluation import EVAL_SEED_OFFSET, evaluate_policy
    from ppo_lab.trained_policy import load_policy

    policy = load_policy(path)
    returns = evaluate_policy(
        lambda n: vector_env("gymnasium_sync", n),
        policy,
        episodes=10,
        seed=summary["seed"] + EVAL_SEED_OFFSET,
    )
    assert returns == summary["eval_returns"], "the checkpoint is the policy that was evaluated"
    obs = np.zeros((3, 4), dtype=np.float32)
    assert policy.act(obs).shape == (3,)


def assert_wandb_run_holds_the_metrics(offline_run: Path, summary: dict) -> None:
    command = [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(offline_run)]
    inspect = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if inspect.returncode != 0:
        pytest.skip(f"this wandb cannot inspect offline runs: {inspect.stderr[-300:]}")
    records = [json.loads(line) for line in inspect.stdout.splitlines() if line.strip()]
    config = next(r["run"]["config"]["update"] for r in records if r["type"] == "run")
    assert config["choices"]["loss"] == "clip" and config["choices"]["loss/policy"] == "clip"
    assert config["loss"]["policy"]["_target_"] == "ppo_lab.losses.policy.clip"
    history = [r["history"]["item"] for r in records if r["type"] == "history"]
    assert len(history) == summary["global_step"] // 256  # one row per update (+ eval merged)
    assert any("charts/episodic_return" in h for h in history)


def _train_in(run_dir: Path, compose_cfg, *overrides: str) -> dict:
    from ppo_lab.config import validate
    from ppo_lab.train import train

    cfg = compose_cfg("logger=none", "eval_episodes=0", "checkpoint_interval=4", *overrides)
    return train(validate(cfg), run_dir, {}, "resume-test")


def test_a_checkpoint_is_only_resumed_by_the_config_that_wrote_it(tmp_path, compose_cfg):
    _train_in(tmp_path, compose_cfg, "total_timesteps=1024")
    with pytest.raises(ConfigError, match=r"gamma: 0.98 -> 0.9.*may change only"):
        _train_in(tmp_path, compose_cfg, "total_timesteps=1024", "gamma=0.9")
    with pytest.raises(ConfigError, match=r"total_timesteps: 1024 -> 2048.*same run and schedule"):
        _train_in(tmp_path, compose_cfg, "total_timesteps=2048")
    with pytest.raises(ConfigError, match=r"resume=false: .* already holds a run"):
        _train_in(tmp_path, compose_cfg, "total_timesteps=1024", "resume=false")
    fresh = _train_in(tmp_path / "new", compose_cfg, "total_timesteps=1024", "resume=false")
    assert "resumed_from_step" not in fresh


def test_a_checkpoint_from_before_a_setting_existed_resumes_with_its_default(tmp_path):
    """A ppo_lab that predates a run-level setting wrote no value for it: that counts as the
    setting's default, so upgrading ppo_lab does not strand an interrupted run."""
    from ppo_lab.checkpoint import check_resumable

    cfg = OmegaConf.to_container(compose_config("logger=none"), resolve=True)
    newer = ("recompute_advantages", "bootstrap_truncations", "cuda_graphs")
    older = {k: v for k, v in cfg.items() if k not in newer}
    check_resumable({"config": older}, cfg, tmp_path / "checkpoint.pt")  # at their defaults
    changed = {**cfg, "recompute_advantages": True}
    with pytest.raises(ConfigError, match=r"recompute_advantages: False -> True"):
        check_resumable({"config": older}, changed, tmp_path / "checkpoint.pt")


@pytest.mark.parametrize("bootstrap", [True, False])
def test_a_time_limit_bootstraps_or_terminates_as_configured(bootstrap):
    """bootstrap_truncations=false treats a time limit as a termination (CleanRL, baselines)."""
    from ppo_lab.train import collect_rollout

    envs = vector_env("gymnasium_sync", 2, kwargs={"max_episode_steps": 5})
    torch.manual_seed(0)
    agent = mlp(envs.single_observation_space, envs.single_action_space)
    buf = Rollout.allocate(
        8, 2, envs.single_observation_space, envs.single_action_space, torch.device("cpu")
    )
    norm = normalizers((4,), 2, 0.99, "cpu")
    try:
        collect_rollout(envs, agent, buf, envs.reset(seed=0), norm, None, bootstrap)
    finally:
        envs.close()
    limit = torch.zeros(8, 2, dtype=torch.bool)
    limit[4] = True  # every 5-step episode hits its limit at t = 4 (CartPole lasts longer)
    assert torch.equal(buf.done.bool(), limit)
    assert torch.equal(buf.terminated.bool(), limit if not bootstrap else torch.zeros_like(limit))
    assert len(buf.truncations) == (1 if bootstrap else 0)
