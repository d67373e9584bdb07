"""Train M runs in one process: a population of members that differ in seed and coefficients.

    for each update:
        rollout   <- one vector env of M * N envs, every member acting on its own N   (collect)
        pi_old, V <- one batched pass over every member's rollout                      (evaluate)
        A, R      <- the estimator over [T, M * N], each env column with its member's coefficients
        for each epoch, minibatch: one vmapped loss for all members, backward once,
                  per-member gradient clipping and Adam step (only members still active)
        per member: its metrics row, W&B run, checkpoint, evaluation

Each member is its own run to everything outside: its own run dir with `metrics.jsonl`,
`summary.json` (its `figures`), `checkpoint.pt` in the single-run format, and W&B run. A member
whose loss or data goes non-finite fails alone; the others go on. With the gymnasium backend, a
member reproduces the separate run of its seed (see `ppo_lab.population.agents`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
from omegaconf import OmegaConf

from ppo_lab.files import remove_stale_temp_files
from ppo_lab.population.members import (
    Member,
    MemberLog,
    evaluate_members,
    member_log,
    report_failures,
    restore,
    resume_states,
    save_members,
)
from ppo_lab.population.packing import check_packable
from ppo_lab.population.state import Population
from ppo_lab.population.update import (
    evaluate_population_rollout,
    nonfinite_members,
    update_population,
)
from ppo_lab.progress import Progress
from ppo_lab.rollout import Rollout
from ppo_lab.signals import GracefulStop
from ppo_lab.train import (
    RECENT_EPISODES,
    collect_rollout,
    final_figures,
    resolve_device,
    update_record,
)

__all__ = ["Member", "train_population"]
log = logging.getLogger("ppo_lab")


def train_population(members: list[Member], stop: GracefulStop | None = None) -> None:
    """Train the members together; each member's `figures` end as its separate run's would.

    Raises ConfigError when the members cannot be one population (they differ in more than
    seeds and coefficients) or the config is invalid; a member's own failure is recorded in its
    figures (`failure`) and the others go on.
    """
    check_packable([m.settings for m in members])
    run = members[0].settings.run
    device = resolve_device(run.device)
    for member in members:
        member.run_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(member.run_dir)
    configs = [OmegaConf.to_container(m.settings.cfg, resolve=True) for m in members]
    resumed = resume_states(members, configs, device)
    pop = Population(members, device)
    global_step, first_update = 0, 1
    if resumed is not None:
        global_step, first_update = restore(pop, resumed)
    buf = Rollout.allocate(
        run.num_steps, pop.num_members * run.num_envs, pop.obs_space, pop.action_space, device
    )
    raw_obs = torch.zeros(buf.obs.shape, device=device) if pop.norm.obs is not None else None
    logs = [
        member_log(m, cfg, resumed[k] if resumed else None, global_step)
        for k, (m, cfg) in enumerate(zip(members, configs, strict=True))
    ]
    for member in members:
        member.figures.update(reward_threshold=pop.envs.reward_threshold, global_step=global_step)
    progress = Progress(run.num_updates * run.batch_size * pop.num_members)  # all members' steps
    exit_codes = [1] * pop.num_members
    try:
        seeds = [
            r.seed + first_update - 1 + i for r in pop.runs for i in range(run.num_envs)
        ]  # each member's envs as its separate run seeds them
        obs_np = pop.envs.reset(seed=seeds)
        start, start_step = time.perf_counter(), global_step
        eval_seconds = 0.0
        for update_index in range(first_update, run.num_updates + 1):
            learning_rates = pop.learning_rates(update_index)  # detail: linear decay to 0
            pop.optimizer.lr = pop.per_member(learning_rates)
            obs_np, ep_returns, ep_lengths, ep_envs = collect_rollout(
                pop.envs, pop.agents, buf, obs_np, pop.norm, raw_obs, run.bootstrap_truncations
            )
            global_step += run.batch_size
            where = f"update {update_index} (global steps up to {global_step})"
            skipping = check_env_data(pop, buf, raw_obs, logs, where)
            learning = pop.alive & ~skipping
            diagnostics: list[dict[str, float]] = [{} for _ in members]
            if bool(learning.any()):
                if raw_obs is not None:
                    pop.norm.update_observations(raw_obs)  # stats for the next rollout
                behaviour = evaluate_population_rollout(pop.agents, buf, pop.norm)
                saved_alive = pop.alive.clone()
                pop.alive &= learning  # members skipping this rollout take no step
                rows = update_population(pop, buf, behaviour)
                pop.alive = saved_alive & (pop.alive | skipping)
                for k in torch.nonzero(learning & pop.alive).flatten().tolist():
                    diagnostics[k] = rows[k]
                    kl = rows[k].get("losses/approx_kl")
                    loss = pop.losses[k]
                    if loss.kl_coef is not None and pop.kl_beta[k] is not None and kl is not None:
                        pop.kl_beta[k] = loss.kl_coef.next(pop.kl_beta[k], kl)
            elapsed = time.perf_counter() - start
            sps = (global_step - start_step) / (elapsed - eval_seconds)
            episodes = (ep_returns, ep_lengths, ep_envs)
            for k in range(pop.num_members):
                if k not in pop.failures:
                    row = {"learning_rate": learning_rates[k], "diagnostics": diagnostics[k]}
                    log_update(pop, k, logs[k], global_step, elapsed, sps, row, episodes)
            # the population's env steps, and the mean of the members' latest returns
            progress.update(
                global_step * pop.num_members, [r for m in logs for r in m.recent_returns[-1:]]
            )
            report_failures(pop, members, logs)
            if not bool(pop.alive.any()):
                break
            periodic = run.eval_interval and update_index % run.eval_interval == 0
            if periodic and update_index < run.num_updates:
                eval_start = time.perf_counter()
                evaluate_members(pop, logs, global_step)
                eval_seconds += time.perf_counter() - eval_start
            stopping = stop is not None and stop.requested
            if stopping or (
                run.checkpoint_interval and update_index % run.checkpoint_interval == 0
            ):
                save_members(pop, configs, logs, global_step, update_index)
            if stopping and stop is not None:
                for member in members:
                    member.figures["stopped_by"] = stop.signal_name
                stop.raise_if_requested()
        if bool(pop.alive.any()):
            save_members(pop, configs, logs, global_step, run.num_updates)
        train_time = round(time.perf_counter() - start, 3)
        for k, member in enumerate(members):
            if k not in pop.failures:
                member.figures["train_time_s"] = train_time
        if run.eval_episodes:
            evaluate_members(pop, logs, global_step, final=True)
        exit_codes = [1 if k in pop.failures else 0 for k in range(pop.num_members)]
    finally:
        progress.close()
        pop.envs.close()
        for member, mlog, code in zip(members, logs, exit_codes, strict=True):
            mlog.metrics.close()
            final_figures(
                member.figures, mlog.recent_returns, mlog.last_metrics, mlog.skipped_updates
            )
            summary = {k: v for k, v in member.figures.items() if k != "final_metrics"}
            mlog.tracker.finish(summary, code)


def check_env_data(
    pop: Population, buf: Rollout, raw_obs: torch.Tensor | None, logs: list[MemberLog], where: str
) -> torch.Tensor:
    """Members whose rollout holds a non-finite reward or observation: failed (on_nonfinite=
    stop) or skipping this update (skip, returned as a mask [M])."""
    skipping = torch.zeros_like(pop.alive)
    for k, what in nonfinite_members(buf, raw_obs, pop.num_members).items():
        if not bool(pop.alive[k]):
            continue
        if pop.runs[k].on_nonfinite == "stop":
            pop.alive[k] = False
            pop.failures[k] = f"non-finite {what} from the environment in {where}"
        else:
            skipping[k] = True
            logs[k].skipped_updates += 1
    return skipping


def log_update(
    pop: Population,
    k: int,
    mlog: MemberLog,
    global_step: int,
    elapsed: float,
    sps: float,
    row: dict[str, Any],
    episodes: tuple[list[float], list[int], list[int]],
) -> None:
    """Member k's metrics row for this update (its own episodes, learning rate, diagnostics),
    to its metrics.jsonl and tracker."""
    returns, lengths, envs = episodes
    mine = [i for i, env in enumerate(envs) if env // pop.envs_per_member == k]
    own_returns = [returns[i] for i in mine]
    mlog.recent_returns = (mlog.recent_returns + own_returns)[-RECENT_EPISODES:]
    record = update_record(
        sps=sps,
        learning_rate=row["learning_rate"],
        diagnostics=row["diagnostics"],
        skipped_updates=mlog.skipped_updates,
        kl_beta=pop.kl_beta[k],
        episodes=(own_returns, [lengths[i] for i in mine]),
        recent_returns=mlog.recent_returns,
    )
    mlog.metrics.write({"global_step": global_step, "time": round(elapsed, 3), **record})
    mlog.tracker.log(record, step=global_step)
    mlog.last_metrics = record
    pop.members[k].figures["global_step"] = global_step
