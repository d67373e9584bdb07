"""One PPO update of every member at once (`ppo_lab.train.update`, member-batched), and the
layouts it moves between: env-major rollouts [T, M * N, ...] and member-major batches [M, B, ...].
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor
from torch.func import vmap

from ppo_lab.components import declared_inputs
from ppo_lab.normalization import normalize_advantages
from ppo_lab.population.agents import MemberAgents
from ppo_lab.population.coefficients import bind, per_env, varying_leaves
from ppo_lab.population.normalization import MemberNormalizers
from ppo_lab.population.optim import clip_grad_norms
from ppo_lab.population.state import Population
from ppo_lab.rollout import Rollout, RolloutValues
from ppo_lab.train import estimate_advantages, nonfinite_loss_term


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
            backward(total)
            grad_norm = clip_grad_norms(pop.agents.flat.grad, pop.max_grad_norm)
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


def backward(total: Tensor) -> None:
    """Every member's gradient of its loss total [M], into the flat gradient [M, P]. The stacked
    leaves' gradients are views into its rows, strided by P: not the layout autograd expects of
    a non-dense leaf, so it warns (once per process), then accumulates into them in place as
    intended; the warning is silenced here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="grad and param do not obey the gradient layout")
        total.sum().backward()


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
