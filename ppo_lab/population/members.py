"""A member of a population: its run (settings, dir, summary figures) and everything it writes
as a separate run would: metrics, tracker, checkpoints in the single-run format, evaluations."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ppo_lab.checkpoint import check_resumable, load_checkpoint, save_checkpoint, training_state
from ppo_lab.components import ConfigError, build
from ppo_lab.config import Settings
from ppo_lab.envs import env_actions
from ppo_lab.evaluation import (
    EVAL_SEED_OFFSET,
    env_maker,
    episode_returns,
    log_evaluation,
    record_evaluation_video,
)
from ppo_lab.tracking import MetricsFile, Tracker, run_id
from ppo_lab.train import CHECKPOINT, holds_a_run
from ppo_lab.trained_policy import TrainedPolicy

if TYPE_CHECKING:
    from ppo_lab.population.state import Population

log = logging.getLogger("ppo_lab")


@dataclass
class Member:
    """One run of a population: its settings, run dir and summary figures (filled as it goes)."""

    settings: Settings
    run_dir: Path
    choices: dict[str, str]
    run_name: str
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass
class MemberLog:
    """What a member keeps between updates: its files, tracker and recent episodes."""

    metrics: MetricsFile
    tracker: Tracker
    wandb_run_id: str
    recent_returns: list[float] = field(default_factory=list)
    last_metrics: dict[str, float] = field(default_factory=dict)
    skipped_updates: int = 0
    failure: str | None = None  # why the member stopped, when it failed


def resume_states(
    members: list[Member], configs: list[Any], device: torch.device
) -> list[dict[str, Any]] | None:
    """Every member's checkpoint when the population resumes; None when it starts fresh."""
    run = members[0].settings.run
    paths = [m.run_dir / CHECKPOINT for m in members]
    if not run.resume:
        held = [str(m.run_dir) for m in members if holds_a_run(m.run_dir)]
        if held:
            raise ConfigError(
                [f"resume=false: {', '.join(held)} already hold a run; start in new dirs"]
            )
        return None
    present = [p for p in paths if p.exists()]
    if not present:
        return None
    if len(present) < len(paths):
        missing = [str(p) for p in paths if not p.exists()]
        raise ConfigError(
            [f"a population resumes only when every member has a checkpoint: missing {missing}"]
        )
    states = [load_checkpoint(p, map_location=device) for p in paths]
    for state, config, path in zip(states, configs, paths, strict=True):
        check_resumable(state, config, path)
    if len({s["update"] for s in states}) > 1:
        found = {str(p): s["update"] for p, s in zip(paths, states, strict=True)}
        raise ConfigError([f"the members' checkpoints are of different updates: {found}"])
    return states


def restore(pop: Population, states: list[dict[str, Any]]) -> tuple[int, int]:
    """Load every member's checkpoint into the population; (global step, first update)."""
    for k, state in enumerate(states):
        pop.agents.load_member(k, state["model"])
        pop.optimizer.load_member_state(k, state["optimizer"]["state"])
        pop.norm.load_member_state_dict(k, state["normalizers"])
        pop.agents.generators[k].set_state(state["rng"].get("member", state["rng"]["torch"]))
        pop.kl_beta[k] = state["kl_beta"]
        pop.members[k].figures["resumed_from_step"] = state["global_step"]
    log.info("resuming the population from its checkpoints at step %d", states[0]["global_step"])
    return states[0]["global_step"], states[0]["update"] + 1


def member_log(
    member: Member, config: Any, resumed: dict[str, Any] | None, global_step: int
) -> MemberLog:
    """The member's metrics file (history cut back to its checkpoint) and tracker."""
    wandb_run_id = resumed["wandb_run_id"] if resumed is not None else run_id(member.run_dir)
    metrics = MetricsFile(
        member.run_dir / "metrics.jsonl",
        keep_until_step=global_step if resumed is not None else None,
    )
    tracker: Tracker = build(
        member.settings.cfg.logger,
        run_dir=member.run_dir,
        config=config,
        choices=member.choices,
        run_name=member.run_name,
        run_id=wandb_run_id,
    )
    recent = list(resumed["recent_returns"]) if resumed is not None else []
    return MemberLog(metrics, tracker, wandb_run_id, recent_returns=recent)


def report_failures(pop: Population, members: list[Member], logs: list[MemberLog]) -> None:
    """Say once, for each member that failed in this update, why; its figures keep it."""
    for k, message in pop.failures.items():
        if logs[k].failure is None:
            logs[k].failure = message
            members[k].figures["failure"] = f"NonFiniteError: {message}"
            log.error("seed %d failed: %s", pop.runs[k].seed, message)


class LiveMembersPolicy:
    """The live members of a population acting as one deterministic policy on a pool of their
    evaluation envs, member-major (`len(members)` blocks of equal size), each member on its own
    block with its own observation statistics: one batched pass for all of them per step."""

    def __init__(self, pop: Population, members: list[int]):
        self.pop, self.members = pop, members

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        pop = self.pop
        x = torch.as_tensor(obs, device=pop.device)
        if x.is_floating_point():  # as TrainedPolicy: float64 envs act on float32
            x = x.float()
        blocks = x.view(len(self.members), -1, *x.shape[1:])
        every = blocks.new_zeros((pop.num_members, *blocks.shape[1:]))  # failed members' rows: 0
        every[self.members] = blocks
        every = pop.norm.observation(every.view(-1, *x.shape[1:]))
        actions = pop.agents.act(every, deterministic=deterministic)
        actions = actions.view(pop.num_members, -1, *actions.shape[1:])[self.members]
        return env_actions(actions.reshape(-1, *actions.shape[2:]), pop.action_space)


def evaluate_members(
    pop: Population, logs: list[MemberLog], global_step: int, final: bool = False
) -> None:
    """Deterministic evaluation of every live member, logged to its own files. The members'
    episodes run together, each member's envs seeded as its separate run's evaluation seeds
    them (envpool seeds a pool with its first seed only)."""
    live = torch.nonzero(pop.alive).flatten().tolist()
    episodes = pop.runs[0].eval_episodes
    seeds = [pop.runs[k].seed + EVAL_SEED_OFFSET + i for k in live for i in range(episodes)]
    returns = episode_returns(
        env_maker(pop.members[0].settings), LiveMembersPolicy(pop, live), len(seeds), seeds
    )
    for block, k in enumerate(live):
        member = pop.members[k]
        envs = range(block * episodes, (block + 1) * episodes)
        own = [returns[e] for e in envs if e in returns]
        log_evaluation(own, logs[k].tracker, logs[k].metrics, global_step)
        if member.settings.run.eval_video:
            policy = TrainedPolicy(
                pop.agents.member(k), pop.norm.member(k), pop.action_space, pop.device
            )
            record_evaluation_video(
                member.settings, policy, pop.obs_space, logs[k].tracker, member.run_dir, global_step
            )
        if final:
            member.figures["eval_return"] = float(np.mean(own)) if own else None
            member.figures["eval_returns"] = own


def save_members(
    pop: Population, configs: list[Any], logs: list[MemberLog], global_step: int, update: int
) -> None:
    """Each live member's checkpoint, in the single-run format (it resumes as a separate run)."""
    learning_rates = pop.learning_rates(update)
    for k in torch.nonzero(pop.alive).flatten().tolist():
        member = pop.members[k]
        if k not in pop.optimizer_groups:  # torch's param_groups for this member's optim entry
            model = pop.agents.member(k)
            optimizer = build(member.settings.cfg.optim, params=model.parameters())
            pop.optimizer_groups[k] = optimizer.state_dict()["param_groups"]
        groups = [{**g, "lr": learning_rates[k]} for g in pop.optimizer_groups[k]]
        state = training_state(
            config=configs[k],
            model=pop.agents.member_state_dict(k),
            optimizer_state={"state": pop.optimizer.member_state(k), "param_groups": groups},
            normalizers=pop.norm.member_state_dict(k),
            global_step=global_step,
            update=update,
            kl_beta=pop.kl_beta[k],
            recent_returns=logs[k].recent_returns,
            observation_space=pop.obs_space,
            action_space=pop.action_space,
            wandb_run_id=logs[k].wandb_run_id,
        )
        generator = pop.agents.generators[k].get_state()
        state["rng"]["member"] = generator
        if pop.device.type == "cpu":  # resumed as a separate run, it draws from here on
            state["rng"]["torch"] = generator
        save_checkpoint(member.run_dir / CHECKPOINT, state)
