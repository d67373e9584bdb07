"""Deterministic evaluation of the current policy on separate envs (and an optional video)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

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


class Policy(Protocol):
    """What an evaluation acts with: a run's `TrainedPolicy`, or a population's live members."""

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions for a batch of raw observations [N, *obs], as the env takes them."""
        ...


def evaluate_policy(
    make_envs: Callable[[int], VectorEnv],
    policy: Policy,
    episodes: int,
    seed: int | list[int],
    max_steps: int = 100_000,
) -> list[float]:
    """Undiscounted returns of `episodes` deterministic episodes, one per env of a fresh pool
    whose env i is seeded `seed + i` (or `seed[i]`), in env order."""
    finished = episode_returns(make_envs, policy, episodes, seed, max_steps)
    return [finished[i] for i in sorted(finished)]


def episode_returns(
    make_envs: Callable[[int], VectorEnv],
    policy: Policy,
    episodes: int,
    seed: int | list[int],
    max_steps: int = 100_000,
) -> dict[int, float]:
    """`evaluate_policy`'s returns by env index; an env whose episode outlasts `max_steps`
    steps is missing."""
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
        return finished
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
    run = settings.run
    policy = TrainedPolicy(agent, norm, spaces[1], device)
    seed = run.seed + EVAL_SEED_OFFSET
    returns = evaluate_policy(env_maker(settings), policy, run.eval_episodes, seed=seed)
    log_evaluation(returns, tracker, metrics, global_step)
    if run.eval_video:
        record_evaluation_video(settings, policy, spaces[0], tracker, run_dir, global_step)
    return returns


def env_maker(settings: Settings) -> Callable[[int], VectorEnv]:
    """Builds a pool of n of the run's envs."""
    env_cfg = settings.cfg.env
    return lambda n: build(env_cfg, num_envs=n)


def log_evaluation(
    returns: list[float], tracker: Tracker, metrics: MetricsFile, global_step: int
) -> None:
    """An evaluation's mean return as eval/episodic_return, to the tracker and metrics.jsonl."""
    if returns:
        record = {"eval/episodic_return": float(np.mean(returns))}
        tracker.log(record, step=global_step)
        metrics.write({"global_step": global_step, **record})


def record_evaluation_video(
    settings: Settings,
    policy: Policy,
    obs_space: gym.Space,
    tracker: Tracker,
    run_dir: Path,
    global_step: int,
) -> None:
    """One deterministic episode saved to run_dir/videos/eval_<step>.mp4 and logged to W&B."""
    from ppo_lab import video

    env_node = OmegaConf.to_container(settings.cfg.env, resolve=True)
    assert isinstance(env_node, dict)
    seed = settings.run.seed + EVAL_SEED_OFFSET
    frames = video.record_episode(env_maker(settings), env_node, obs_space, policy.act, seed)
    if frames is not None:
        path = video.save_video(frames, run_dir / "videos" / f"eval_{global_step}.mp4")
        video.log_video(tracker, path, global_step)
