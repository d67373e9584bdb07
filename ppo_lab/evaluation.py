"""Deterministic evaluation of the current policy on separate envs (and an optional video)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from omegaconf import OmegaConf

from ppo_lab.components import build
from ppo_lab.config import Settings
from ppo_lab.envs import VectorEnv
from ppo_lab.networks import ActorCritic
from ppo_lab.normalization import Normalizers
from ppo_lab.tracking import MetricsFile, Tracker
from ppo_lab.trained_policy import TrainedPolicy

EVAL_SEED_OFFSET = 1_000_000  # evaluation envs are seeded apart from the training envs


def evaluate_policy(
    make_envs: Callable[[int], VectorEnv],
    policy: TrainedPolicy,
    episodes: int,
    seed: int,
    max_steps: int = 100_000,
) -> list[float]:
    """Undiscounted returns of `episodes` deterministic episodes, one per env of a fresh pool."""
    envs = make_envs(episodes)
    try:
        obs = envs.reset(seed=seed)
        finished: dict[int, float] = {}
        for _ in range(max_steps):
            step = envs.step(policy.act(obs, deterministic=True))
            if step.episodes is not None:
                for env_index, ret in zip(
                    step.episodes.env_ids, step.episodes.returns, strict=True
                ):
                    finished.setdefault(int(env_index), float(ret))
            if len(finished) == episodes:
                break
            obs = step.obs
        return [finished[i] for i in sorted(finished)]
    finally:
        envs.close()


def evaluate_and_log(
    settings: Settings,
    agent: ActorCritic,
    norm: Normalizers,
    device: torch.device,
    spaces: tuple[gym.Space, gym.Space],
    tracker: Tracker,
    metrics: MetricsFile,
    run_dir: Path,
    global_step: int,
) -> list[float]:
    """`eval_episodes` deterministic episodes on separate envs, logged as eval/episodic_return;
    with `eval_video`, one more episode saved to run_dir/videos/ and logged to W&B."""
    run, env_cfg = settings.run, settings.cfg.env

    def make_envs(n: int) -> VectorEnv:
        return build(env_cfg, num_envs=n)

    obs_space, action_space = spaces
    policy = TrainedPolicy(agent, norm, action_space, device)
    seed = run.seed + EVAL_SEED_OFFSET
    returns = evaluate_policy(make_envs, policy, run.eval_episodes, seed=seed)
    if returns:
        record = {"eval/episodic_return": float(np.mean(returns))}
        tracker.log(record, step=global_step)
        metrics.write({"global_step": global_step, **record})
    if run.eval_video:
        from ppo_lab import video

        env_node = OmegaConf.to_container(env_cfg, resolve=True)
        assert isinstance(env_node, dict)
        frames = video.record_episode(make_envs, env_node, obs_space, policy.act, seed)
        if frames is not None:
            path = video.save_video(frames, run_dir / "videos" / f"eval_{global_step}.mp4")
            video.log_video(tracker, path, global_step)
    return returns
