"""Train M runs in one process: a population of members that differ in seed and coefficients.

    for each update:
        rollout   <- one vector env of M * N envs, every member acting on its own N   (collect)
        pi_old, V <- one vmapped pass over every member's rollout                      (evaluate)
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import Tensor
from torch.func import vmap

from ppo_lab.checkpoint import check_resumable, load_checkpoint, save_checkpoint, training_state
from ppo_lab.components import ConfigError, build, declared_inputs
from ppo_lab.config import Settings
from ppo_lab.envs import VectorEnv
from ppo_lab.evaluation import evaluate_and_log
from ppo_lab.files import remove_stale_temp_files
from ppo_lab.losses import PPOLoss
from ppo_lab.normalization import Normalizers, normalize_advantages
from ppo_lab.population.agents import MemberAgents
from ppo_lab.population.coefficients import bind, merge, per_env, varying_leaves
from ppo_lab.population.normalization import MemberNormalizers
from ppo_lab.population.optim import MemberAdam, clip_grad_norms
from ppo_lab.population.packing import check_packable
from ppo_lab.progress import Progress
from ppo_lab.rollout import Rollout, RolloutValues
from ppo_lab.signals import GracefulStop
from ppo_lab.threads import intra_op_threads
from ppo_lab.tracking import MetricsFile, Tracker, run_id
from ppo_lab.train import (
    CHECKPOINT,
    RECENT_EPISODES,
    annealed_lr,
    build_agent,
    collect_rollout,
    estimate_advantages,
    final_figures,
    holds_a_run,
    nonfinite_loss_term,
    resolve_device,
    update_record,
)

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


def member_major(x: Tensor, members: int) -> Tensor:
    """[T, M * N, ...] (env-major rollout) -> [M, T * N, ...] (each member's batch)."""
    t = x.shape[0]
    return x.reshape(t, members, -1, *x.shape[2:]).movedim(1, 0).reshape(members, -1, *x.shape[2:])


def env_major(x: Tensor, steps: int) -> Tensor:
    """[M, T * N] -> [T, M * N], the inverse of `member_major` for per-sample values."""
    members = x.shape[0]
    return x.reshape(members, steps, -1).movedim(0, 1).reshape(steps, -1)


def take(x: Tensor, idx: Tensor) -> Tensor:
    """Each member's rows idx [M, b] of x [M, B, ...] -> [M, b, ...]."""
    return x[torch.arange(x.shape[0], device=x.device).unsqueeze(1), idx]


@torch.no_grad()
def evaluate_population_rollout(
    agents: MemberAgents, buf: Rollout, norm: MemberNormalizers
) -> RolloutValues:
    """`train.evaluate_rollout` for every member: log-probs and values [T, M * N]."""
    members, steps = agents.num_members, buf.num_steps
    logp, _, values = agents.evaluate(
        member_major(buf.obs, members), member_major(buf.actions, members)
    )
    values = env_major(norm.values(values), steps)
    next_values = torch.empty_like(values)
    next_values[:-1] = values[1:]
    last = buf.last_obs.view(members, -1, *buf.last_obs.shape[1:])
    next_values[-1] = norm.values(agents.value(last)).reshape(-1)
    for t, envs_idx, final_obs in buf.truncations:  # each env's value from its own member
        every_member = agents.value(final_obs.expand(members, *final_obs.shape))  # [M, K]
        owner = envs_idx // norm.envs_per_member
        next_values[t, envs_idx] = norm.values(every_member)[owner, torch.arange(len(owner))]
    return RolloutValues(env_major(logp, steps), values, next_values)


class Population:
    """The state of M members trained together (built by `train_population`)."""

    def __init__(self, members: list[Member], device: torch.device):
        self.members = members
        self.runs = [m.settings.run for m in members]
        run = self.runs[0]
        self.num_members, self.device = len(members), device
        self.envs_per_member = run.num_envs
        self.losses: list[PPOLoss] = []
        agents, generators, normalizers = [], [], []
        self.envs: VectorEnv = build(
            members[0].settings.cfg.env, num_envs=self.num_members * run.num_envs
        )
        self.obs_space = self.envs.single_observation_space
        self.action_space = self.envs.single_action_space
        obs_shape = tuple(self.obs_space.shape or ())
        threads = intra_op_threads(run.torch_threads, image_observations=len(obs_shape) == 3)
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            for member in members:
                cfg, seed = member.settings.cfg, member.settings.run.seed
                torch.manual_seed(seed)
                np.random.seed(seed)
                self.losses.append(build(cfg.loss))
                norm: Normalizers = build(
                    cfg.normalization,
                    obs_shape=obs_shape,
                    num_envs=run.num_envs,
                    gamma=member.settings.run.gamma,
                    device=device,
                )
                normalizers.append(norm)
                agent = build_agent(
                    member.settings, member.choices, norm, self.obs_space, self.action_space
                )
                agents.append(agent.to(device))
                generators.append(member_generator(seed, device))
            self.loss = merge(self.losses, "loss")
            self.estimator = merge([build(m.settings.cfg.advantage) for m in members], "advantage")
        except ConfigError:
            self.envs.close()
            raise
        self.agents = MemberAgents(agents, generators)
        self.gamma = self.per_member([r.gamma for r in self.runs])
        # the reward scaler's return accumulates in float64, with each member's gamma as given
        gamma64 = self.per_env(self.gamma.double().new_tensor([r.gamma for r in self.runs]))
        self.norm = MemberNormalizers(normalizers, run.num_envs, gamma64)
        self.optimizer = member_optimizer(members, self.agents.parameters(), device)
        self.max_grad_norm = self.per_member(
            [r.max_grad_norm if r.max_grad_norm is not None else float("inf") for r in self.runs]
        )
        self.kl_beta = [loss.initial_kl_beta for loss in self.losses]
        self.alive = torch.ones(self.num_members, dtype=torch.bool, device=device)
        self.failures: dict[int, str] = {}  # member -> why it stopped

    def learning_rates(self, update_index: int) -> list[float]:
        """Each member's learning rate at an update, as its separate run computes it."""
        lrs = [float(m.settings.cfg.optim.lr) for m in self.members]
        if not self.runs[0].anneal_lr:
            return lrs
        return [annealed_lr(lr, update_index, self.runs[0].num_updates) for lr in lrs]

    def per_member(self, values: list[float]) -> Tensor:
        return torch.tensor(values, dtype=torch.float32, device=self.device)

    def per_env(self, values: Tensor) -> Tensor | float:
        """[M] -> [M * N], or a plain float when every member has the same value."""
        if bool((values == values[0]).all()):
            return float(values[0])
        return values.repeat_interleave(self.envs_per_member)


def member_generator(seed: int, device: torch.device) -> torch.Generator:
    """The member's own generator, where its separate run's global one is after building the
    network (CPU), or seeded as `torch.manual_seed` seeds the CUDA one (the network is built on
    the CPU, so that one is untouched)."""
    generator = torch.Generator(device=device)
    if device.type == "cpu":
        generator.set_state(torch.get_rng_state())
    else:
        generator.manual_seed(seed)
    return generator


def member_optimizer(
    members: list[Member], params: list[Tensor], device: torch.device
) -> MemberAdam:
    """`MemberAdam` with each member's `optim` entry (adam or adamw) as its hyperparameters."""
    entries = []
    for member in members:
        node = member.settings.cfg.optim
        target = str(node.get("_target_"))
        if target not in ("ppo_lab.optim.adam", "ppo_lab.optim.adamw"):
            raise ConfigError(
                [f"optim._target_={target}: a population steps optim=adam or optim=adamw"]
            )
        entries.append(node)

    def values(key: str, default: float, index: int | None = None) -> Tensor:
        out = []
        for node in entries:
            value = node.get(key, default)
            out.append(float(value[index] if index is not None else value))
        return torch.tensor(out, dtype=torch.float32, device=device)

    return MemberAdam(
        params,
        lr=values("lr", 2.5e-4),
        betas=(values("betas", 0.9, 0), values("betas", 0.999, 1)),
        eps=values("eps", 1e-5),
        weight_decay=values("weight_decay", 0.0),
    )


def member_losses(pop: Population) -> Any:
    """One function for every member's minibatch loss, vmapped: (coefficients, minibatch
    tensors [M, b], kl_beta [M] or None) -> (total [M], info {name: [M]})."""
    leaves = varying_leaves(pop.loss)
    minibatch_scope = pop.norm.advantage_scope == "minibatch"

    def one(coefs: list[Tensor], *minibatch: Tensor | None) -> tuple[Tensor, dict[str, Tensor]]:
        logp, logp_old, adv, values, old_values, targets, entropy, beta = minibatch
        loss = bind(pop.loss, coefs)
        if minibatch_scope:
            adv = normalize_advantages(adv)  # detail: per-minibatch advantage normalization
        total, info = loss(logp, logp_old, adv, values, old_values, targets, entropy, beta)
        return total, {**info, "advantages": adv}

    batched = vmap(one)

    def losses(*tensors: Tensor, kl_beta: Tensor | None) -> tuple[Tensor, dict[str, Tensor]]:
        if kl_beta is None:
            return vmap(lambda c, *t: one(c, *t, None))(leaves, *tensors)
        return batched(leaves, *tensors, kl_beta)

    return losses


def update_population(pop: Population, buf: Rollout, behaviour: RolloutValues) -> list[dict]:
    """One PPO update of every live member (`train.update`, member-batched). Returns each
    member's diagnostics; a member whose gradient goes non-finite is failed (on_nonfinite=stop)
    or skips that step (skip)."""
    run, members = pop.runs[0], pop.num_members
    estimator = per_env(pop.estimator, pop.envs_per_member, pop.device)
    gamma = pop.per_env(pop.gamma)
    recompute = run.recompute_advantages or "logp_target" in declared_inputs(estimator)
    advantages, returns = estimate_advantages(estimator, gamma, buf, behaviour, behaviour)
    b_obs, b_actions = member_major(buf.obs, members), member_major(buf.actions, members)
    b_logp_old = member_major(behaviour.logprobs, members)
    b_values_old = member_major(behaviour.values, members)
    explained = explained_variances(b_values_old, member_major(returns, members))
    pop.norm.update_value_targets(member_major(returns, members))
    losses = member_losses(pop)
    kl_beta = None if pop.kl_beta[0] is None else pop.per_member(pop.kl_beta)
    early_stop = pop.per_member([r.early_stop_kl or float("inf") for r in pop.runs])
    active = pop.alive.clone()
    sums: dict[str, Tensor] = {}
    steps_taken = torch.zeros(members, device=pop.device)
    epochs_done = torch.zeros(members, device=pop.device)
    skipped = [0] * members
    batch, minibatch = run.batch_size, run.minibatch_size
    for epoch in range(run.update_epochs):
        if epoch > 0 and recompute:  # detail: fresh advantages from the current networks
            current = evaluate_population_rollout(pop.agents, buf, pop.norm)
            advantages, returns = estimate_advantages(estimator, gamma, buf, behaviour, current)
        b_adv, b_returns = member_major(advantages, members), member_major(returns, members)
        if pop.norm.advantage_scope == "batch":
            b_adv = vmap(normalize_advantages)(b_adv)  # detail: advantage normalization (batch)
        if pop.norm.value_target is not None:
            targets = pop.norm.value_target.normalize(b_returns)
            old_values = pop.norm.value_target.normalize(b_values_old)
        else:
            targets, old_values = b_returns, b_values_old
        epoch_kl = torch.zeros(members, device=pop.device)
        epoch_steps = torch.zeros(members, device=pop.device)
        order = torch.stack(
            [
                torch.randperm(batch, generator=g, device=pop.device)
                if bool(active[k])
                else torch.arange(batch, device=pop.device)
                for k, g in enumerate(pop.agents.generators)
            ]
        )
        for idx in order.split(minibatch, dim=1):
            logp, entropy, values = pop.agents.evaluate(take(b_obs, idx), take(b_actions, idx))
            total, info = losses(
                logp,
                take(b_logp_old, idx),
                take(b_adv, idx),
                values,
                take(old_values, idx),
                take(targets, idx),
                entropy,
                kl_beta=kl_beta,
            )
            pop.optimizer.zero_grad()
            total.sum().backward()
            grad_norm = clip_grad_norms(pop.optimizer.params, pop.max_grad_norm)
            finite = torch.isfinite(grad_norm)
            for k in torch.nonzero(active & ~finite).flatten().tolist():
                cause = nonfinite_loss_term(
                    {
                        **{key: value[k] for key, value in info.items()},
                        "value targets": take(targets, idx)[k],
                        "log-probabilities": logp[k],
                    }
                )
                if run.on_nonfinite == "stop":  # this member stops; the others go on
                    pop.alive[k] = False
                    pop.failures[k] = f"non-finite {cause}"
                else:
                    skipped[k] += 1
            stepping = active & finite & pop.alive
            pop.optimizer.step(stepping)
            gate = stepping.float()
            for key, value in {**info, "grad_norm": grad_norm}.items():
                if key != "advantages":
                    term = torch.where(stepping, value.detach(), 0.0)
                    sums[key] = sums[key] + term if key in sums else term
            steps_taken += gate
            epoch_kl += torch.where(stepping, info["approx_kl"].detach(), 0.0)
            epoch_steps += gate
        active &= pop.alive
        epochs_done += active.float()
        mean_kl = epoch_kl / epoch_steps.clamp(min=1)
        active &= ~(mean_kl > early_stop)  # detail: stop a member's epochs once it moved too far
        if not bool(active.any()):
            break
    means = {key: (value / steps_taken.clamp(min=1)).tolist() for key, value in sums.items()}
    stopped_early = (epochs_done < run.update_epochs).tolist()
    out = []
    for k in range(members):
        row = {f"losses/{key}": values[k] for key, values in means.items()}
        row["losses/explained_variance"] = explained[k]
        row["losses/epochs"] = int(epochs_done[k])
        row["losses/early_stopped"] = float(stopped_early[k] and bool(pop.alive[k]))
        if skipped[k]:
            row["losses/skipped_steps"] = skipped[k]
        out.append(row)
    return out


def explained_variances(predicted: Tensor, target: Tensor) -> list[float]:
    """Per member 1 - Var[R - V] / Var[R] (NaN where Var[R] = 0), from [M, B] tensors."""
    var_target = target.var(dim=1)
    ev = 1 - (target - predicted).var(dim=1) / var_target
    return torch.where(var_target == 0, torch.nan, ev).tolist()


def nonfinite_members(buf: Rollout, raw_obs: Tensor | None, members: int) -> dict[int, str]:
    """Members whose rollout holds a non-finite reward or observation (as the env gave them)."""
    rewards = torch.from_numpy(buf.host.rewards)
    bad = {k: "reward" for k in _not_finite(rewards, members)}
    obs = raw_obs if raw_obs is not None else buf.obs
    if obs.is_floating_point():
        bad.update({k: "observation" for k in _not_finite(obs, members) if k not in bad})
    return bad


def _not_finite(x: Tensor, members: int) -> list[int]:
    per_member = x.reshape(x.shape[0], members, -1)
    return torch.nonzero(~torch.isfinite(per_member).all(dim=2).all(dim=0)).flatten().tolist()


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
            bad = nonfinite_members(buf, raw_obs, pop.num_members)
            skipping = torch.zeros_like(pop.alive)
            for k, what in bad.items():
                if not bool(pop.alive[k]):
                    continue
                if pop.runs[k].on_nonfinite == "stop":
                    pop.alive[k] = False
                    pop.failures[k] = f"non-finite {what} from the environment in {where}"
                else:
                    skipping[k] = True
                    logs[k].skipped_updates += 1
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
            for k, (member, mlog) in enumerate(zip(members, logs, strict=True)):
                if k in pop.failures:
                    continue
                mine = [i for i, e in enumerate(ep_envs) if e // run.num_envs == k]
                returns = [ep_returns[i] for i in mine]
                mlog.recent_returns = (mlog.recent_returns + returns)[-RECENT_EPISODES:]
                record = update_record(
                    sps=(global_step - start_step) / (elapsed - eval_seconds),
                    learning_rate=learning_rates[k],
                    diagnostics=diagnostics[k],
                    skipped_updates=mlog.skipped_updates,
                    kl_beta=pop.kl_beta[k],
                    episodes=(returns, [ep_lengths[i] for i in mine]),
                    recent_returns=mlog.recent_returns,
                )
                mlog.metrics.write(
                    {"global_step": global_step, "time": round(elapsed, 3), **record}
                )
                mlog.tracker.log(record, step=global_step)
                mlog.last_metrics = record
                member.figures["global_step"] = global_step
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


def evaluate_members(
    pop: Population, logs: list[MemberLog], global_step: int, final: bool = False
) -> None:
    """Deterministic evaluation of every live member, logged to its own files."""
    spaces = (pop.obs_space, pop.action_space)
    for k in torch.nonzero(pop.alive).flatten().tolist():
        member = pop.members[k]
        returns = evaluate_and_log(
            member.settings,
            pop.agents.member(k),
            pop.norm.member(k),
            pop.device,
            spaces,
            logs[k].tracker,
            logs[k].metrics,
            member.run_dir,
            global_step,
        )
        if final:
            member.figures["eval_return"] = float(np.mean(returns)) if returns else None
            member.figures["eval_returns"] = returns


def save_members(
    pop: Population, configs: list[Any], logs: list[MemberLog], global_step: int, update: int
) -> None:
    """Each live member's checkpoint, in the single-run format (it resumes as a separate run)."""
    for k in torch.nonzero(pop.alive).flatten().tolist():
        member = pop.members[k]
        agent = pop.agents.member(k)
        optimizer: torch.optim.Optimizer = build(
            member.settings.cfg.optim, params=agent.parameters()
        )
        groups = [
            {**group, "lr": pop.learning_rates(update)[k]}
            for group in optimizer.state_dict()["param_groups"]
        ]
        optimizer.load_state_dict({"state": pop.optimizer.member_state(k), "param_groups": groups})
        state = training_state(
            config=configs[k],
            agent=agent,
            optimizer=optimizer,
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
