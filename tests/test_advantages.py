"""Advantage estimators against closed forms, hand-computed episodes and brute-force references."""

from __future__ import annotations

import pytest
import torch

from ppo_lab import advantages
from ppo_lab.advantages import gae, mc, nstep, vtrace
from ppo_lab.components import (
    build,
    caller_inputs,
    check_entry,
    config_parameters,
    declared_inputs,
)

from helpers import compose_config


def rollout(T: int, N: int, seed: int, *, consistent: bool = True, p_term=0.1, p_trunc=0.1):
    """Random float64 rollout [T, N] with terminations and truncations mixed.

    consistent: next_values[t] = values[t+1] inside an episode (one critic evaluated on the same
    states); elsewhere next_values is V(final obs) / the bootstrap value / junk where terminated.
    """
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randn(T, N, generator=g, dtype=torch.float64)
    values = torch.randn(T, N, generator=g, dtype=torch.float64)
    u = torch.rand(T, N, generator=g, dtype=torch.float64)
    terminated = u < p_term
    done = terminated | (u > 1 - p_trunc)
    next_values = torch.randn(T, N, generator=g, dtype=torch.float64) * 3
    if consistent:
        inside = ~done[:-1]
        next_values[:-1] = torch.where(inside, values[1:], next_values[:-1])
    return rewards, values, next_values, terminated, done


def episode_end(done, t: int, n: int) -> int:
    """First step e >= t with done[e, n], or T-1."""
    T = done.shape[0]
    return next((e for e in range(t, T) if done[e, n]), T - 1)


def td_errors(r, v, nv, term, gamma):
    """delta_t = r_t + gamma (1 - term_t) V(s_{t+1}) - V(s_t) as nested lists of floats."""
    T, N = r.shape
    r, v, nv = r.tolist(), v.tolist(), nv.tolist()
    return [
        [r[t][n] + gamma * (1 - float(term[t, n])) * nv[t][n] - v[t][n] for n in range(N)]
        for t in range(T)
    ]


def gae_reference(r, v, nv, term, done, gamma, lam):
    """A_t = sum_{k=0}^{e-t} (gamma lam)^k delta_{t+k}, e = the episode end or T-1; plain floats."""
    r, v, nv = r.tolist(), v.tolist(), nv.tolist()
    T, N = len(r), len(r[0])
    adv = [[0.0] * N for _ in range(T)]
    for n in range(N):
        for t in range(T):
            end = episode_end(done, t, n)
            for k in range(end - t + 1):
                delta = r[t + k][n] + gamma * (1 - float(term[t + k, n])) * nv[t + k][n]
                delta -= v[t + k][n]
                adv[t][n] += (gamma * lam) ** k * delta
    adv = torch.tensor(adv, dtype=torch.float64)
    return adv, adv + torch.as_tensor(v, dtype=torch.float64)


def nstep_reference(r, v, nv, term, done, gamma, horizon):
    T, N = r.shape
    ret = torch.zeros(T, N, dtype=torch.float64)
    for n in range(N):
        for t in range(T):
            total = 0.0
            for k in range(horizon):
                i = t + k
                total += gamma**k * float(r[i, n])
                if bool(done[i, n]) or k == horizon - 1 or i == T - 1:
                    total += gamma ** (k + 1) * (1 - float(term[i, n])) * float(nv[i, n])
                    break
            ret[t, n] = total
    return ret - v, ret


def vtrace_reference(r, v, nv, term, done, gamma, logp_b, logp_t, rho_bar, c_bar, lam):
    """The paper's sum: v_s = V(x_s) + sum_t gamma^{t-s} (prod_{i<t} c_i) rho_t delta_t."""
    T, N = r.shape
    ratio = torch.exp(logp_t - logp_b).tolist()
    delta = td_errors(r, v, nv, term, gamma)
    vs = torch.zeros(T, N, dtype=torch.float64)
    adv = torch.zeros(T, N, dtype=torch.float64)
    for n in range(N):
        for s in range(T):
            total, trace = float(v[s, n]), 1.0
            for t in range(s, episode_end(done, s, n) + 1):
                total += gamma ** (t - s) * trace * min(rho_bar, ratio[t][n]) * delta[t][n]
                trace *= lam * min(c_bar, ratio[t][n])
            vs[s, n] = total
    for n in range(N):
        for s in range(T):
            inside = not bool(done[s, n]) and s < T - 1
            v_next = float(vs[s + 1, n]) if inside else float(nv[s, n])
            target = float(r[s, n]) + gamma * (1 - float(term[s, n])) * v_next
            adv[s, n] = min(rho_bar, ratio[s][n]) * (target - float(v[s, n]))
    return adv, vs


def close(a, b, tol=1e-10):
    torch.testing.assert_close(a, b, rtol=tol, atol=tol)


# ---------------------------------------------------------------- gae


@pytest.mark.parametrize("lam", [0.0, 0.95, 1.0])
@pytest.mark.parametrize("N", [1, 3, 8])
def test_gae_matches_reference_loop(lam, N):
    data = rollout(17, N, seed=N)
    adv, ret = gae(*data, gamma=0.97, lam=lam)
    ref_adv, ref_ret = gae_reference(*data, 0.97, lam)
    close(adv, ref_adv)
    close(ret, ref_ret)


def test_gae_inconsistent_next_values_still_matches_reference():
    data = rollout(12, 4, seed=5, consistent=False)
    adv, ret = gae(*data, gamma=0.9, lam=0.8)
    ref_adv, ref_ret = gae_reference(*data, 0.9, 0.8)
    close(adv, ref_adv)
    close(ret, ref_ret)


def hand_episode():
    """Episode r = 1, 2, 3 terminating at t = 2, then a new one cut by the rollout edge at t = 3."""
    rewards = torch.tensor([[1.0], [2.0], [3.0], [4.0]], dtype=torch.float64)
    values = torch.tensor([[0.5], [-1.0], [2.0], [3.0]], dtype=torch.float64)
    next_values = torch.tensor([[-1.0], [2.0], [99.0], [10.0]], dtype=torch.float64)
    terminated = torch.tensor([[False], [False], [True], [False]])
    return rewards, values, next_values, terminated, terminated.clone()


def test_gae_lambda_one_is_discounted_return():
    # gamma = 0.9: G_2 = 3, G_1 = 2 + .9*3 = 4.7, G_0 = 1 + .9*4.7 = 5.23; G_3 = 4 + .9*10 = 13
    data = hand_episode()
    expected = torch.tensor([[5.23], [4.7], [3.0], [13.0]], dtype=torch.float64)
    adv, ret = gae(*data, gamma=0.9, lam=1.0)
    close(ret, expected)
    close(adv, expected - data[1])
    close(mc(*data, gamma=0.9)[1], expected)
    close(nstep(*data, gamma=0.9, n=4)[1], expected)


def test_gae_lambda_zero_is_td0():
    rewards, values, next_values, terminated, done = rollout(20, 5, seed=1)
    adv, ret = gae(rewards, values, next_values, terminated, done, gamma=0.99, lam=0.0)
    td_target = rewards + 0.99 * (1 - terminated.double()) * next_values  # r + γ(1-term)V(s')
    close(ret, td_target)
    close(adv, td_target - values)


def truncation_case(terminal: bool):
    """Step 1 ends an episode (final obs value 4); step 2 starts another (bootstrap 2)."""
    rewards = torch.ones(3, 1, dtype=torch.float64)
    values = torch.tensor([[3.0], [5.0], [8.0]], dtype=torch.float64)
    next_values = torch.tensor([[5.0], [4.0], [2.0]], dtype=torch.float64)
    done = torch.tensor([[False], [True], [False]])
    terminated = done.clone() if terminal else torch.zeros_like(done)
    return rewards, values, next_values, terminated, done


@pytest.mark.parametrize("estimator", ["gae", "mc", "nstep", "vtrace"])
def test_truncation_bootstraps_termination_does_not(estimator):
    gamma = 0.5
    kwargs = {"gae": {"lam": 1.0}, "mc": {}, "nstep": {"n": 10}}.get(estimator)
    if kwargs is None:
        kwargs = {"logp_behaviour": torch.zeros(3, 1), "logp_target": torch.zeros(3, 1)}
    fn = getattr(advantages, estimator)
    # truncated: G_1 = 1 + .5*4 = 3, G_0 = 1 + .5*3 = 2.5; new episode: G_2 = 1 + .5*2 = 2
    _, ret = fn(*truncation_case(terminal=False), gamma=gamma, **kwargs)
    close(ret, torch.tensor([[2.5], [3.0], [2.0]], dtype=torch.float64))
    # terminated: G_1 = 1, G_0 = 1 + .5*1 = 1.5; V(final obs) = 4 ignored
    _, ret = fn(*truncation_case(terminal=True), gamma=gamma, **kwargs)
    close(ret, torch.tensor([[1.5], [1.0], [2.0]], dtype=torch.float64))


def test_gae_td0_truncation_hand_computed():
    # lam = 0: A_1 = r + γ V(final obs) - V(s_1) = 1 + .5*4 - 5 = -2 (truncated); 1 - 5 = -4 (term.)
    adv, _ = gae(*truncation_case(terminal=False), gamma=0.5, lam=0.0)
    assert adv[1, 0].item() == pytest.approx(-2.0)
    adv, _ = gae(*truncation_case(terminal=True), gamma=0.5, lam=0.0)
    assert adv[1, 0].item() == pytest.approx(-4.0)


def test_gae_float32_and_float_masks_match_float64():
    rewards, values, next_values, terminated, done = rollout(30, 6, seed=3)
    ref_adv, ref_ret = gae(rewards, values, next_values, terminated, done, gamma=0.99, lam=0.95)
    f32 = [x.float() for x in (rewards, values, next_values, terminated, done)]
    adv, ret = gae(*f32, gamma=0.99, lam=0.95)
    assert adv.dtype == torch.float32 and ret.dtype == torch.float32
    torch.testing.assert_close(adv.double(), ref_adv, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ret.double(), ref_ret, rtol=1e-5, atol=1e-5)


def test_terminated_cuts_trace_even_if_done_omits_it():
    rewards, values, next_values, terminated, done = rollout(15, 4, seed=8)
    expected = gae(rewards, values, next_values, terminated, done, gamma=0.9, lam=0.9)
    only_truncations = done & ~terminated
    got = gae(rewards, values, next_values, terminated, only_truncations, gamma=0.9, lam=0.9)
    close(got[0], expected[0])


def test_single_step_rollout():
    data = rollout(1, 3, seed=2)
    td_target = data[0] + 0.9 * (1 - data[3].double()) * data[2]
    for fn, kw in [(gae, {"lam": 0.5}), (mc, {}), (nstep, {"n": 3})]:
        close(fn(*data, gamma=0.9, **kw)[1], td_target)


# ---------------------------------------------------------------- nstep / mc


@pytest.mark.parametrize("n", [1, 2, 5, 40])
@pytest.mark.parametrize("consistent", [True, False])
def test_nstep_matches_brute_force(n, consistent):
    data = rollout(16, 5, seed=n, consistent=consistent)
    adv, ret = nstep(*data, gamma=0.95, n=n)
    ref_adv, ref_ret = nstep_reference(*data, 0.95, n)
    close(adv, ref_adv)
    close(ret, ref_ret)


@pytest.mark.parametrize("consistent", [True, False])
def test_nstep_long_horizon_equals_mc(consistent):
    data = rollout(16, 5, seed=11, consistent=consistent)
    for n in (16, 17, 1000):
        close(nstep(*data, gamma=0.95, n=n)[0], mc(*data, gamma=0.95)[0])


def test_nstep_one_is_td0():
    rewards, values, next_values, terminated, done = rollout(16, 5, seed=12)
    _, ret = nstep(rewards, values, next_values, terminated, done, gamma=0.95, n=1)
    close(ret, rewards + 0.95 * (1 - terminated.double()) * next_values)


def test_mc_equals_gae_lambda_one_on_consistent_values():
    data = rollout(25, 6, seed=13)
    adv, ret = mc(*data, gamma=0.99)
    ref_adv, ref_ret = gae(*data, gamma=0.99, lam=1.0)
    close(adv, ref_adv)
    close(ret, ref_ret)


# ---------------------------------------------------------------- vtrace


def log_probs(T, N, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(T, N, generator=g, dtype=torch.float64) * 0.5 for _ in range(2))


@pytest.mark.parametrize("lam", [0.0, 0.9, 1.0])
def test_vtrace_on_policy_equals_gae(lam):
    data = rollout(20, 4, seed=21)
    logp = torch.randn(20, 4, dtype=torch.float64)
    for bars in ((1.0, 1.0), (2.0, 5.0)):
        adv, vs = vtrace(
            *data, gamma=0.97, logp_behaviour=logp, logp_target=logp.clone(),
            rho_bar=bars[0], c_bar=bars[1], lam=lam,
        )  # fmt: skip
        ref_adv, ref_ret = gae(*data, gamma=0.97, lam=lam)
        close(vs, ref_ret)
        if lam == 1.0:  # the one-step-corrected advantage equals GAE's only at lam = 1
            close(adv, ref_adv)


@pytest.mark.parametrize(
    ("rho_bar", "c_bar", "lam"), [(1.0, 1.0, 1.0), (2.0, 0.5, 0.9), (0.7, 1.5, 1.0)]
)
@pytest.mark.parametrize("consistent", [True, False])
def test_vtrace_off_policy_matches_paper_sum(rho_bar, c_bar, lam, consistent):
    T, N = 14, 5
    data = rollout(T, N, seed=31, consistent=consistent)
    logp_b, logp_t = log_probs(T, N, seed=32)
    adv, vs = vtrace(
        *data, gamma=0.9, logp_behaviour=logp_b, logp_target=logp_t,
        rho_bar=rho_bar, c_bar=c_bar, lam=lam,
    )  # fmt: skip
    ref_adv, ref_vs = vtrace_reference(*data, 0.9, logp_b, logp_t, rho_bar, c_bar, lam)
    close(vs, ref_vs)
    close(adv, ref_adv)


def test_vtrace_rejects_misshaped_log_probs():
    data = rollout(5, 2, seed=0)
    with pytest.raises(ValueError, match="logp_behaviour"):
        vtrace(*data, gamma=0.9, logp_behaviour=torch.zeros(5), logp_target=torch.zeros(5, 2))


# ---------------------------------------------------------------- purity


def all_calls():
    T, N = 9, 3
    logp_b, logp_t = log_probs(T, N, seed=41)
    yield gae, {"lam": 0.95}
    yield nstep, {"n": 3}
    yield mc, {}
    yield vtrace, {"logp_behaviour": logp_b, "logp_target": logp_t, "rho_bar": 1.0, "lam": 0.9}


@pytest.mark.parametrize("float_masks", [False, True])
def test_inputs_unchanged(float_masks):
    data = list(rollout(9, 3, seed=42))
    if float_masks:
        data[3], data[4] = data[3].double(), data[4].double()
    for fn, kwargs in all_calls():
        before = [x.clone() for x in data]
        kw_before = {k: v.clone() for k, v in kwargs.items() if torch.is_tensor(v)}
        adv, ret = fn(*data, gamma=0.9, **kwargs)
        for x, y in zip(data, before, strict=True):
            assert torch.equal(x, y), fn.__name__
        for k, v in kw_before.items():
            assert torch.equal(kwargs[k], v), (fn.__name__, k)
        for out in (adv, ret):  # outputs are new storage, never a view of an input
            assert all(out.data_ptr() != x.data_ptr() for x in data)


def test_outputs_carry_no_gradient():
    rewards, values, next_values, terminated, done = rollout(9, 3, seed=43)
    values.requires_grad_(True)
    next_values.requires_grad_(True)
    for fn, kwargs in all_calls():
        adv, ret = fn(rewards, values, next_values, terminated, done, gamma=0.9, **kwargs)
        assert not adv.requires_grad and not ret.requires_grad, fn.__name__


def test_mismatched_shapes_are_rejected():
    rewards, values, next_values, terminated, done = rollout(6, 2, seed=44)
    with pytest.raises(ValueError, match="share one shape"):
        gae(rewards, values[:-1], next_values, terminated, done, gamma=0.9)


# ---------------------------------------------------------------- config group


@pytest.mark.parametrize("name", ["gae", "nstep", "mc", "vtrace"])
def test_each_entry_builds_its_estimator(name):
    cfg = compose_config(f"advantage={name}")
    assert check_entry(cfg.advantage, "advantage") == []
    estimator = build(cfg.advantage)
    assert estimator.func is getattr(advantages, name)
    data = rollout(5, 2, seed=45)
    state = {"logp_behaviour": torch.zeros(5, 2, dtype=torch.float64)} if name == "vtrace" else {}
    state |= {"logp_target": state["logp_behaviour"]} if state else {}
    adv, ret = estimator(*data, 0.9, **state)
    assert torch.allclose(ret - adv, data[1])  # R = A + V for every estimator


def test_only_vtrace_declares_trainer_inputs():
    declared = {name: declared_inputs(getattr(advantages, name)) for name in advantages.__all__}
    assert declared == {
        "gae": frozenset(),
        "nstep": frozenset(),
        "mc": frozenset(),
        "vtrace": frozenset({"logp_behaviour", "logp_target"}),
    }


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("advantage.lam=1.5", "advantage.lam=1.5: should be less than or equal to 1"),
        ("advantage.lam=-0.1", "advantage.lam=-0.1: should be greater than or equal to 0"),
        ("advantage=nstep advantage.n=0", "advantage.n=0: should be greater than or equal to 1"),
        ("advantage=nstep advantage.n=2.5", "advantage.n=2.5: should be a valid integer"),
        (
            "advantage=vtrace advantage.rho_bar=0.0",
            "advantage.rho_bar=0.0: should be greater than 0",
        ),
        ("advantage=vtrace advantage.c_bar=-1.0", "advantage.c_bar=-1.0: should be greater than 0"),
        ("advantage=mc +advantage.lam=0.9", "advantage.lam: unknown key for mc; valid keys: none"),
        ("+advantage.gamma=0.9", "advantage.gamma: unknown key for gae; valid keys: lam"),
    ],
)
def test_bad_values_are_rejected_naming_the_key(override, message):
    cfg = compose_config(*override.split())
    assert check_entry(cfg.advantage, "advantage") == [message]


def test_gamma_is_supplied_by_the_trainer_not_the_entry():
    for name in advantages.__all__:
        assert "gamma" in caller_inputs(getattr(advantages, name))
        assert "gamma" not in config_parameters(getattr(advantages, name))
