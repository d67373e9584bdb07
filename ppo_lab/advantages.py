"""Advantage estimators: pure functions from one rollout to (advantages, returns).

Every estimator has one signature,

    advantages, returns = fn(rewards, values, next_values, terminated, done, gamma, *, **coefs)

    rewards      [T, N]  r_t, the reward of the action taken at step t (T steps, N envs)
    values       [T, N]  V_t = V(s_t), the critic at the state the action was taken in
    next_values  [T, N]  V'_t = V(s_{t+1}) of the TRUE next state: the final observation where
                         the episode was truncated at t, the next rollout state otherwise, and at
                         t = T-1 the bootstrap value of the state after the rollout. Ignored where
                         terminated.
    terminated   [T, N]  bool or 0/1 float: the episode truly ended at t (a terminal state), so
                         nothing is bootstrapped from s_{t+1}
    done         [T, N]  bool or 0/1 float: terminated OR truncated at t; the trace is cut there,
                         nothing propagates from one episode into the previous one. A terminated
                         step counts as done even where `done` forgets to say so.
    gamma        float   discount in [0, 1], the run-level setting, passed by the trainer
    advantages   [T, N]  A_t, the input of the policy loss
    returns      [T, N]  the critic's regression targets

Trailing dimensions after [T, N] are allowed; all tensors share one shape, one device. Inputs are
never modified. Outputs are targets: they are computed under `torch.no_grad()` and carry no
gradient. The keyword-only coefficients, typed and constrained, are the schema of a
`conf/advantage/*.yaml` entry whose `_target_` names the function (`ppo_lab.components`).
`vtrace` also takes the log-probabilities `logp_behaviour` and `logp_target`, declared with
`@trainer_inputs`: the trainer recomputes the current policy's before every epoch and passes them.

Time limits. A truncated step is done but not terminated: the trace is cut, yet the return still
bootstraps from V(final observation), which `next_values` holds. Treating truncation as
termination (no bootstrap) biases every value near a time limit towards zero.

    gae     Schulman et al. 2016, High-Dimensional Continuous Control Using Generalized Advantage
            Estimation (arXiv:1506.02438), eq. 16
    nstep   n-step TD returns, Sutton & Barto 2018, Reinforcement Learning: An Introduction, eq. 7.1
    mc      Monte-Carlo returns, Sutton & Barto 2018, ch. 5 (= gae with lam = 1)
    vtrace  Espeholt et al. 2018, IMPALA: Scalable Distributed Deep-RL with Importance Weighted
            Actor-Learner Architectures (arXiv:1802.01561), sec. 4, eq. 1 and 4
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ppo_lab.components import Positive, PositiveInt, UnitInterval, trainer_inputs

Estimator = Callable[..., tuple[Tensor, Tensor]]  # a built `advantage` entry
Lambda = UnitInterval
Horizon = PositiveInt
Truncation = Positive

__all__ = ["gae", "mc", "nstep", "vtrace"]


def _continuations(
    rewards: Tensor, values: Tensor, next_values: Tensor, terminated: Tensor, done: Tensor
) -> tuple[Tensor, Tensor]:
    """(1 - term_t, 1 - done_t) as float tensors [T, N] (new tensors), after checking the shapes.

    `done` is taken as done OR terminated, so a termination always cuts the trace.
    """
    shapes = {
        "rewards": rewards.shape,
        "values": values.shape,
        "next_values": next_values.shape,
        "terminated": terminated.shape,
        "done": done.shape,
    }
    if len(set(shapes.values())) != 1 or rewards.ndim < 1:
        listed = ", ".join(f"{k} {tuple(v)}" for k, v in shapes.items())
        raise ValueError(f"advantage estimator inputs must share one shape [T, N]; got {listed}")
    dtype = torch.promote_types(rewards.dtype, torch.promote_types(values.dtype, next_values.dtype))
    not_term = 1.0 - terminated.to(dtype)  # 1 - term_t
    not_done = (1.0 - done.to(dtype)) * not_term  # 1 - done_t   (term_t implies done_t)
    return not_term, not_done


def _reverse_scan(base: Tensor, decay: Tensor) -> Tensor:
    """x_t = base_t + decay_t * x_{t+1}, x_{T-1} = base_{T-1}: a new tensor [T, N].

    One fused multiply-add per step, vectorised over N, written into a preallocated output.
    """
    out = torch.empty_like(base)
    out[-1] = base[-1]
    for t in range(base.shape[0] - 2, -1, -1):
        torch.addcmul(base[t], decay[t], out[t + 1], out=out[t])  # x_t = base_t + decay_t x_{t+1}
    return out


@torch.no_grad()
def gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    done: Tensor,
    gamma: float,
    *,
    lam: Lambda = 0.95,
) -> tuple[Tensor, Tensor]:
    """Generalized Advantage Estimation (Schulman et al. 2016, eq. 16). Shapes: module docstring.

    The TD error of the critic at step t,

        delta_t = r_t + gamma (1 - term_t) V(s_{t+1}) - V(s_t),

    is an advantage estimate with low variance and the critic's bias; the discounted sum of TD
    errors up to the episode end is the Monte-Carlo advantage, unbiased with high variance. GAE
    takes the exponentially weighted average of all k-step estimates, which telescopes to

        A_t = sum_{k>=0} (gamma lam)^k delta_{t+k}   (the sum stops at the episode end)
            = delta_t + gamma lam (1 - done_t) A_{t+1},    A_T = 0,

    computed backwards over T, vectorised over N. Returns (value targets) are R_t = A_t + V(s_t)
    (the TD(lam) return). lam = 0 gives TD(0): A_t = delta_t; lam = 1 gives the discounted return
    to the episode end minus V(s_t), bootstrapped at truncations and at the rollout edge.

    Args:
        rewards, values, next_values: [T, N] float.
        terminated, done: [T, N] bool or 0/1 float.
        gamma: discount in [0, 1].
        lam: GAE lambda in [0, 1], the bias-variance trade-off.

    Returns:
        (advantages [T, N], returns [T, N]).
    """
    not_term, not_done = _continuations(rewards, values, next_values, terminated, done)
    deltas = rewards + gamma * not_term * next_values - values  # δ_t = r_t + γ(1-term_t)V'_t - V_t
    decay = (gamma * lam) * not_done  # γλ(1 - done_t)
    advantages = _reverse_scan(deltas, decay)  # A_t = δ_t + γλ(1-done_t) A_{t+1}
    returns = advantages + values  # R_t = A_t + V(s_t)
    return advantages, returns


@torch.no_grad()
def nstep(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    done: Tensor,
    gamma: float,
    *,
    n: Horizon = 5,
) -> tuple[Tensor, Tensor]:
    """n-step TD returns (Sutton & Barto 2018, eq. 7.1). Shapes: module docstring.

    The return from step t sums m rewards and bootstraps from the state m steps later,

        R_t = sum_{k=0}^{m-1} gamma^k r_{t+k} + gamma^m (1 - term_{t+m-1}) V(s_{t+m}),

    where the trace stops at the first of: n steps (m = n), the end of the episode (done at
    t+m-1: no bootstrap after a termination, V(final observation) after a truncation) and the end
    of the rollout (t+m-1 = T-1: the bootstrap value). V(s_{t+m}) is next_values[t+m-1].
    n = 1 gives TD(0) targets; n >= T gives the Monte-Carlo returns of `mc`. A_t = R_t - V(s_t).

    Computed as min(n, T) vectorised passes over the offset k (O(n T N) work).

    Args:
        rewards, values, next_values: [T, N] float.
        terminated, done: [T, N] bool or 0/1 float.
        gamma: discount in [0, 1].
        n: the number of rewards summed before bootstrapping, >= 1.

    Returns:
        (advantages [T, N], returns [T, N]).
    """
    not_term, not_done = _continuations(rewards, values, next_values, terminated, done)
    horizon = rewards.shape[0]
    bootstrap = not_term * next_values  # (1 - term_t) V(s_{t+1})
    returns = torch.zeros_like(bootstrap)
    running = torch.ones_like(bootstrap)  # 1 while the trace started at t is still open at t+k
    for k in range(min(n, horizon)):
        ret, open_ = returns[: horizon - k], running[: horizon - k]  # starts t = 0 .. T-1-k
        ret.addcmul_(open_, rewards[k:], value=gamma**k)  # R_t += γ^k r_{t+k}
        stops = torch.ones_like(open_) if k == n - 1 else 1.0 - not_done[k:]  # cut after t+k ...
        stops[-1] = 1.0  # ... and at the rollout edge, t+k = T-1
        ret.addcmul_(open_ * stops, bootstrap[k:], value=gamma ** (k + 1))  # += γ^{k+1}(1-term)V'
        open_.mul_(1.0 - stops)
    advantages = returns - values  # A_t = R_t - V(s_t)
    return advantages, returns


@torch.no_grad()
def mc(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    done: Tensor,
    gamma: float,
) -> tuple[Tensor, Tensor]:
    """Monte-Carlo returns (Sutton & Barto 2018, ch. 5). Shapes: module docstring.

    The discounted return to the end of the episode,

        G_t = r_t + gamma (1 - cut_t) G_{t+1} + gamma cut_t (1 - term_t) V(s_{t+1}),

    with cut_t = done_t or t = T-1: the only bootstraps are V(final observation) at a truncation
    and the bootstrap value at the rollout edge; a termination adds nothing. A_t = G_t - V(s_t).
    Unbiased given those bootstraps, high variance. Equal to `gae` with lam = 1 whenever
    next_values[t] = values[t+1] inside an episode (one critic evaluated consistently); computed
    here from rewards and bootstraps alone, so `values` enters only through A_t.

    Args:
        rewards, values, next_values: [T, N] float.
        terminated, done: [T, N] bool or 0/1 float.
        gamma: discount in [0, 1].

    Returns:
        (advantages [T, N], returns [T, N]).
    """
    not_term, not_done = _continuations(rewards, values, next_values, terminated, done)
    carry = not_done.clone()  # 1 - cut_t
    carry[-1] = 0.0  # the rollout edge cuts too
    ends = rewards + gamma * (1.0 - carry) * not_term * next_values  # r_t + γ cut_t(1-term_t)V'_t
    returns = _reverse_scan(ends, gamma * carry)  # G_t = ends_t + γ(1 - cut_t) G_{t+1}
    advantages = returns - values  # A_t = G_t - V(s_t)
    return advantages, returns


@trainer_inputs("logp_behaviour", "logp_target")
@torch.no_grad()
def vtrace(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    done: Tensor,
    gamma: float,
    logp_behaviour: Tensor,
    logp_target: Tensor,
    *,
    rho_bar: Truncation = 1.0,
    c_bar: Truncation = 1.0,
    lam: Lambda = 1.0,
) -> tuple[Tensor, Tensor]:
    """V-trace off-policy targets (Espeholt et al. 2018, sec. 4). Shapes: module docstring.

    The actions were sampled from a behaviour policy mu (log mu(a_t|s_t) = logp_behaviour) and are
    evaluated for a target policy pi (log pi(a_t|s_t) = logp_target). With truncated importance
    weights rho_t = min(rho_bar, pi/mu) and trace coefficients c_t = lam min(c_bar, pi/mu), the
    n-step V-trace target (eq. 1), with the sum stopping at the episode end and the rollout edge,

        v_s = V(s_s) + sum_{t>=s} gamma^{t-s} (prod_{i=s}^{t-1} c_i) rho_t delta_t,
        delta_t = r_t + gamma (1 - term_t) V(s_{t+1}) - V(s_t),

    obeys the recursion (Remark 1) computed backwards here:

        v_s - V(s_s) = rho_s delta_s + gamma c_s (1 - done_s) (v_{s+1} - V(s_{s+1})).

    rho_bar sets the fixed point (the value of pi for rho_bar = inf, nearer mu's below), c_bar and
    lam the speed of convergence (the variance). The policy-gradient advantage (eq. 4) is

        A_s = rho_s (r_s + gamma (1 - term_s) v'_{s+1} - V(s_s)),

    with v'_{s+1} = v_{s+1} inside the episode and rollout, V(s_{s+1}) (next_values) at a done
    step and at s = T-1. Returns (value targets) are v_s. On-policy (pi = mu) with rho_bar, c_bar
    >= 1 and lam = 1 both equal those of `gae` with lam = 1.

    In PPO the behaviour policy is the rollout's and the target is the policy being optimised:
    both log-probs are of the rollout's actions; recompute them before every epoch.

    Args:
        rewards, values, next_values: [T, N] float.
        terminated, done: [T, N] bool or 0/1 float.
        gamma: discount in [0, 1].
        logp_behaviour: [T, N] log mu(a_t|s_t), the policy that collected the rollout.
        logp_target: [T, N] log pi(a_t|s_t), the policy being evaluated.
        rho_bar: truncation of the importance weights in the TD errors and the advantage, > 0.
        c_bar: truncation of the importance weights in the traces, > 0.
        lam: extra discount of the traces in [0, 1] (Remark 2; lam = 1 is the paper's V-trace).

    Returns:
        (advantages [T, N], returns [T, N]).
    """
    not_term, not_done = _continuations(rewards, values, next_values, terminated, done)
    if logp_behaviour.shape != rewards.shape or logp_target.shape != rewards.shape:
        raise ValueError(
            f"vtrace: logp_behaviour {tuple(logp_behaviour.shape)} and logp_target "
            f"{tuple(logp_target.shape)} must have the rewards' shape {tuple(rewards.shape)}"
        )
    ratio = torch.exp(logp_target - logp_behaviour)  # π(a_t|s_t) / μ(a_t|s_t)
    rho = ratio.clamp(max=rho_bar)  # ρ_t = min(ρ̄, π/μ)
    c = lam * ratio.clamp(max=c_bar)  # c_t = λ min(c̄, π/μ)
    deltas = rewards + gamma * not_term * next_values - values  # δ_t = r_t + γ(1-term_t)V'_t - V_t
    decay = gamma * c * not_done  # γ c_s (1 - done_s)
    vs = values + _reverse_scan(rho * deltas, decay)  # v_s = V_s + ρ_s δ_s + decay_s(v-V)_{s+1}
    v_next = next_values.clone()  # v'_{s+1} = V'_s at done steps and at s = T-1 ...
    v_next[:-1] = torch.where(not_done[:-1] > 0, vs[1:], next_values[:-1])  # ... else v_{s+1}
    q_estimate = rewards + gamma * not_term * v_next  # r_s + γ(1-term_s)v'_{s+1}
    advantages = rho * (q_estimate - values)  # A_s = ρ_s(r_s + γ(1-term_s)v'_{s+1} - V_s)
    return advantages, vs
