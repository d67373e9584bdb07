"""`update()` on a tiny fixed rollout: what reaches the losses, against values computed by hand.

The policy and value losses here are spies: real losses (clip, mse) that also record the
advantages and targets they were given, so each test reads what the update fed them.
"""

from __future__ import annotations

import functools
import itertools

import gymnasium as gym
import numpy as np
import pytest
import torch

from ppo_lab.advantages import gae, vtrace
from ppo_lab.config import RunSettings
from ppo_lab.losses import PPOLoss, policy, value
from ppo_lab.networks import mlp
from ppo_lab.normalization import normalize_advantages, normalizers
from ppo_lab.optim import adam
from ppo_lab.rollout import Rollout
from ppo_lab.train import annealed_lr, estimate_advantages, evaluate_rollout, update

OBS = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
ACTIONS = gym.spaces.Discrete(2)
T, N = 4, 2  # 8 samples


def run_settings(**changes) -> RunSettings:
    base = dict(
        seed=0,
        total_timesteps=8,
        num_envs=N,
        num_steps=T,
        update_epochs=1,
        num_minibatches=2,
        gamma=0.9,
        anneal_lr=False,
        max_grad_norm=0.5,
    )
    return RunSettings(**{**base, **changes})


class Spy:
    """Records each call's given tensor argument (detached clones) by name."""

    def __init__(self, fn, record: str):
        self.fn, self.record, self.calls = fn, record, []
        functools.update_wrapper(self, fn)

    def __call__(self, *args, **kwargs):
        names = (
            ("logp_new", "logp_old", "advantages")
            if self.fn in POLICIES
            else ("values", "old_values", "returns")
        )
        self.calls.append(dict(zip(names, args, strict=False))[self.record].detach().clone())
        return self.fn(*args, **kwargs)


POLICIES = (policy.clip, policy.vanilla, policy.dual_clip, policy.kl_penalty)


def fixture(seed: int = 0):
    torch.manual_seed(seed)
    agent = mlp(OBS, ACTIONS)
    buf = Rollout.allocate(T, N, OBS, ACTIONS, torch.device("cpu"))
    buf.obs.uniform_(-1, 1)
    buf.last_obs.uniform_(-1, 1)
    buf.actions.random_(0, 2)
    buf.rewards.copy_(torch.tensor([[1.0, 0.0], [0.5, 1.0], [0.0, 2.0], [1.0, 1.0]]))
    buf.terminated[2, 0] = 1.0
    buf.done[2, 0] = 1.0
    return agent, buf, adam(agent.parameters(), lr=1e-3)


GAE = functools.partial(gae, lam=0.8)


def spied_update(run: RunSettings, scope: str = "minibatch", value_target: bool = False):
    estimator = GAE
    agent, buf, optimizer = fixture()
    norm = normalizers((3,), N, run.gamma, "cpu", advantage_scope=scope, value_target=value_target)
    behaviour = evaluate_rollout(agent, buf, norm)
    expected_adv, expected_returns = estimator(
        buf.rewards, behaviour.values, behaviour.next_values, buf.terminated, buf.done, run.gamma
    )
    policy_spy, value_spy = Spy(policy.clip, "advantages"), Spy(value.mse, "returns")
    loss = PPOLoss(policy=policy_spy, value=value_spy, vf_coef=0.5, ent_coef=0.0)
    out = update(run, loss, estimator, agent, optimizer, buf, behaviour, norm, None)
    return (
        out,
        policy_spy.calls,
        value_spy.calls,
        expected_adv.reshape(-1),
        expected_returns.reshape(-1),
        norm,
    )


def sorted_cat(tensors) -> torch.Tensor:
    return torch.cat(tensors).sort().values


def test_no_advantage_normalization_feeds_the_estimator_advantages():
    _, advs, _, expected, _, _ = spied_update(run_settings(), scope="none")
    assert len(advs) == 2 and all(len(a) == 4 for a in advs)  # two minibatches of 4
    torch.testing.assert_close(sorted_cat(advs), expected.sort().values)


def test_batch_scope_normalizes_once_over_the_whole_rollout():
    _, advs, _, expected, _, _ = spied_update(run_settings(), scope="batch")
    normalized = (expected - expected.mean()) / (expected.std() + 1e-8)  # A' = (A - mu) / sigma
    torch.testing.assert_close(sorted_cat(advs), normalized.sort().values)


def test_minibatch_scope_normalizes_each_minibatch_on_its_own():
    _, advs, _, expected, _, _ = spied_update(run_settings(), scope="minibatch")
    for a in advs:
        torch.testing.assert_close(a.mean(), torch.tensor(0.0), atol=1e-6, rtol=0)
        torch.testing.assert_close(a.std(), torch.tensor(1.0), atol=1e-5, rtol=0)
    # and each minibatch is the normalization of its own 4 raw advantages, not of the batch's
    subsets = [torch.tensor(c) for c in itertools.combinations(expected.tolist(), 4)]
    for a in advs:
        assert any(
            torch.allclose(normalize_advantages(c).sort().values, a.sort().values, atol=1e-5)
            for c in subsets
        )


def test_value_targets_are_the_returns_or_their_normalization():
    _, _, targets, _, returns, _ = spied_update(run_settings())
    torch.testing.assert_close(sorted_cat(targets), returns.sort().values)
    _, _, targets, _, returns, norm = spied_update(run_settings(), value_target=True)
    assert norm.value_target is not None and norm.value_target.count == 8
    mean, var = returns.double().mean(), returns.double().var(correction=0)
    normalized = ((returns.double() - mean) / torch.sqrt(var + 1e-8)).float()  # (R - mu) / sigma
    torch.testing.assert_close(sorted_cat(targets), normalized.sort().values)


def test_every_epoch_runs_without_early_stop_and_stops_after_the_first_with_it():
    out, advs, _, _, _, _ = spied_update(run_settings(update_epochs=3))
    assert (out["losses/epochs"], out["losses/early_stopped"], len(advs)) == (3, 0.0, 6)
    out, advs, _, _, _, _ = spied_update(run_settings(update_epochs=3, early_stop_kl=1e-12))
    assert (out["losses/epochs"], out["losses/early_stopped"], len(advs)) == (1, 1.0, 2)
    assert out["losses/approx_kl"] > 1e-12  # the measured KL that stopped it


def test_recomputed_advantages_use_the_current_critic_and_keep_pi_old():
    run = run_settings(update_epochs=2, recompute_advantages=True)
    agent, buf, optimizer = fixture()
    norm = normalizers((3,), N, run.gamma, "cpu", advantage_scope="none")
    behaviour = evaluate_rollout(agent, buf, norm)
    estimator_calls = []

    def recording_vtrace(
        rewards, values, next_values, terminated, done, gamma, logp_behaviour, logp_target, **kw
    ):
        estimator_calls.append((values.clone(), logp_behaviour.clone(), logp_target.clone()))
        return vtrace(
            rewards, values, next_values, terminated, done, gamma, logp_behaviour, logp_target, **kw
        )

    recording_vtrace.trainer_inputs = vtrace.trainer_inputs
    old_spy = Spy(policy.clip, "logp_old")
    loss = PPOLoss(policy=old_spy, value=value.mse)
    update(run, loss, recording_vtrace, agent, optimizer, buf, behaviour, norm, None)
    current = evaluate_rollout(agent, buf, norm)  # (the agent after both epochs)
    assert len(estimator_calls) == 2
    first, second = estimator_calls
    torch.testing.assert_close(first[0], behaviour.values)
    torch.testing.assert_close(first[2], behaviour.logprobs)  # on-policy at the start
    assert not torch.allclose(second[0], behaviour.values)  # the critic moved after epoch 1
    torch.testing.assert_close(second[1], behaviour.logprobs)  # mu stays the rollout's policy
    assert not torch.allclose(second[2], current.logprobs)  # pi after epoch 1, not after 2
    torch.testing.assert_close(
        sorted_cat(old_spy.calls[2:]), behaviour.logprobs.reshape(-1).sort().values
    )


def test_vtrace_recomputes_every_epoch_without_being_told():
    run = run_settings(update_epochs=2)
    agent, buf, optimizer = fixture()
    norm = normalizers((3,), N, run.gamma, "cpu")
    behaviour = evaluate_rollout(agent, buf, norm)
    calls = []

    def counting(*args, **kw):
        calls.append(1)
        return vtrace(*args, **kw)

    counting.trainer_inputs = vtrace.trainer_inputs
    update(
        run,
        PPOLoss(policy=policy.clip, value=value.mse),
        counting,
        agent,
        optimizer,
        buf,
        behaviour,
        norm,
        None,
    )
    assert len(calls) == 2


def test_estimate_advantages_passes_vtrace_the_two_policies():
    agent, buf, _ = fixture()
    norm = normalizers((3,), N, 0.9, "cpu")
    behaviour = evaluate_rollout(agent, buf, norm)
    shifted = behaviour._replace(logprobs=behaviour.logprobs - 0.5)
    estimator = functools.partial(vtrace, rho_bar=10.0, c_bar=10.0)
    adv, ret = estimate_advantages(estimator, 0.9, buf, behaviour, shifted)
    ref = vtrace(
        buf.rewards,
        shifted.values,
        shifted.next_values,
        buf.terminated,
        buf.done,
        0.9,
        behaviour.logprobs,
        shifted.logprobs,
        rho_bar=10.0,
        c_bar=10.0,
    )
    torch.testing.assert_close((adv, ret), ref)


@pytest.mark.parametrize(("k", "expected"), [(1, 1e-3), (2, 0.75e-3), (4, 0.25e-3)])
def test_learning_rate_anneals_linearly_to_zero(k, expected):
    assert annealed_lr(1e-3, k, num_updates=4) == pytest.approx(expected)
