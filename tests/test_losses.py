"""Math of the PPO losses: closed forms, hand-computed cases and an independent float64 reference.

Per-sample terms are read back through the weight: loss = -mean(w * L) (policy) or mean(w * l)
(value), so d loss / d w_i = -L_i / B (or l_i / B) exposes each sample's objective without
re-implementing the reduction.
"""

from __future__ import annotations

import math
import typing

import annotated_types
import numpy as np
import pytest
import torch

from ppo_lab.components import caller_inputs, check_entry, config_parameters, declared_inputs
from ppo_lab.losses import PPOLoss, policy, value
from ppo_lab.losses.kl_coef import AdaptiveKLCoefficient, FixedKLCoefficient

from helpers import compose_config

POLICY_FNS = [policy.vanilla, policy.clip, policy.dual_clip, policy.kl_penalty]
CLIPPED_POLICY_FNS = [policy.clip, policy.dual_clip]
VALUE_FNS = [value.mse, value.clipped, value.huber]
EPS, C, BETA = 0.2, 3.0, 0.7
POLICY_COEFS = {"clip_eps": EPS, "dual_clip": C}  # loss.policy.<key>
VALUE_COEFS = {"clip_eps": EPS, "delta": 0.5}  # loss.value.<key>
TRAINER_STATE = {"kl_beta": BETA}  # what the trainer passes to a policy that declares it


def t(x) -> torch.Tensor:
    return torch.as_tensor(x, dtype=torch.float64)


def coefs(fn) -> dict:
    """The test coefficients that `fn` takes: its config and the trainer state it declares."""
    given = VALUE_COEFS if fn in VALUE_FNS else POLICY_COEFS
    state = {k: v for k, v in TRAINER_STATE.items() if k in declared_inputs(fn)}
    return {k: v for k, v in given.items() if k in config_parameters(fn)} | state


def random_policy_batch(n: int = 256, seed: int = 0):
    """logp_old, logp_new, A, w in float64; log r ~ N(0, 0.8) reaches every clip region."""
    g = torch.Generator().manual_seed(seed)
    logp_old = -torch.rand(n, generator=g, dtype=torch.float64) * 3
    log_ratio = torch.randn(n, generator=g, dtype=torch.float64) * 0.8
    adv = torch.randn(n, generator=g, dtype=torch.float64)
    weight = torch.rand(n, generator=g, dtype=torch.float64) * 2
    return logp_old + log_ratio, logp_old, adv, weight


def random_value_batch(n: int = 256, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    old = torch.randn(n, generator=g, dtype=torch.float64)
    values = old + torch.randn(n, generator=g, dtype=torch.float64) * 0.4
    returns = old + torch.randn(n, generator=g, dtype=torch.float64) * 2
    weight = torch.rand(n, generator=g, dtype=torch.float64) * 2
    return values, old, returns, weight


def policy_per_sample(fn, logp_new, logp_old, adv, weight=None, **kw):
    """(loss, per-sample objective L_i, d loss / d logp_new) through autograd."""
    logp_new = logp_new.detach().clone().requires_grad_(True)
    w = (torch.ones_like(adv) if weight is None else weight.clone()).requires_grad_(True)
    loss, _ = fn(logp_new, logp_old, adv, weight=w, **kw)
    g_logp, g_w = torch.autograd.grad(loss, (logp_new, w))
    return loss.detach(), -g_w * len(adv), g_logp


def value_per_sample(fn, values, old, returns, weight=None, **kw):
    """(loss, per-sample term l_i, d loss / d values) through autograd."""
    values = values.detach().clone().requires_grad_(True)
    w = (torch.ones_like(values) if weight is None else weight.clone()).requires_grad_(True)
    loss, _ = fn(values, old, returns, weight=w, **kw)
    g_v, g_w = torch.autograd.grad(loss, (values, w))
    return loss.detach(), g_w * len(values), g_v


# ----- independent float64 re-derivations of the seeds' formulas (numpy, piecewise form) ------


def ref_policy(name, logp_new, logp_old, adv, eps=EPS, c=C, beta=BETA):
    """Per-sample objective L_i and dL_i/dlogp_new_i, written case by case on the sign of A."""
    ln, lo, a = (x.detach().numpy() for x in (logp_new, logp_old, adv))
    r = np.exp(ln - lo)
    if name == "vanilla":
        return r * a, r * a
    if name == "kl_penalty":
        return r * a - beta * (r - 1 - np.log(r)), r * a - beta * (r - 1)
    if name == "clip":  # A >= 0: A min(r, 1+eps);  A < 0: A max(r, 1-eps)
        factor = np.where(a >= 0, np.minimum(r, 1 + eps), np.maximum(r, 1 - eps))
        free = np.where(a >= 0, r < 1 + eps, r > 1 - eps)
    elif name == "dual_clip":  # A < 0: A min(max(r, 1-eps), c)
        factor = np.where(a >= 0, np.minimum(r, 1 + eps), np.minimum(np.maximum(r, 1 - eps), c))
        free = np.where(a >= 0, r < 1 + eps, (r > 1 - eps) & (r < c))
    else:
        raise ValueError(name)
    return a * factor, np.where(free, r * a, 0.0)


def ref_value(name, values, old, returns, eps=EPS, delta=0.5):
    """Per-sample loss term l_i and dl_i/dV_i."""
    v, vo, ret = (x.detach().numpy() for x in (values, old, returns))
    e = v - ret
    if name == "mse":
        return 0.5 * e**2, e
    if name == "huber":
        term = np.where(np.abs(e) <= delta, 0.5 * e**2, delta * (np.abs(e) - 0.5 * delta))
        return term, np.clip(e, -delta, delta)
    if name == "clipped":
        inside = np.abs(v - vo) < eps
        v_clip = np.where(inside, v, vo + np.sign(v - vo) * eps)
        e_clip = v_clip - ret
        use_plain = e**2 >= e_clip**2
        grad = np.where(use_plain, e, np.where(inside, e_clip, 0.0))
        return 0.5 * np.maximum(e**2, e_clip**2), grad
    raise ValueError(name)


# ----- policy losses ----------------------------------------------------------------------------


@pytest.mark.parametrize("fn", POLICY_FNS, ids=lambda f: f.__name__)
def test_ratio_one_every_policy_loss_is_minus_mean_advantage(fn):
    _, logp, adv, w = random_policy_batch()
    loss, info = fn(logp, logp, adv, **coefs(fn))
    torch.testing.assert_close(loss, -adv.mean())
    loss_w, _ = fn(logp, logp, adv, weight=w, **coefs(fn))
    torch.testing.assert_close(loss_w, -(w * adv).mean())
    zero = t(0.0)
    for key in policy.INFO_KEYS:
        torch.testing.assert_close(info[key], zero)


@pytest.mark.parametrize("fn", [policy.clip, policy.dual_clip], ids=lambda f: f.__name__)
def test_no_gradient_where_the_clip_is_active(fn):
    # A > 0, r > 1+eps | A < 0, r < 1-eps | A > 0, r < 1-eps | A < 0, r > 1+eps | A > 0, r inside
    ratio = t([1.5, 0.5, 0.5, 1.5, 1.1])
    adv = t([1.0, -2.0, 3.0, -1.5, 0.7])
    logp_old = t([-1.0, -2.0, -0.5, -3.0, -1.2])
    _, _, grad = policy_per_sample(fn, logp_old + ratio.log(), logp_old, adv, **coefs(fn))
    expected = -(ratio * adv) / 5  # d(-mean(r A))/dlogp_new where unclipped
    expected[:2] = 0.0
    torch.testing.assert_close(grad, expected)
    assert (grad[2:] != 0).all()


def test_vanilla_never_clips_the_gradient():
    ratio, adv = t([1.5, 0.5, 0.5, 1.5]), t([1.0, -2.0, 3.0, -1.5])
    _, _, grad = policy_per_sample(policy.vanilla, ratio.log(), t([0.0] * 4), adv)
    torch.testing.assert_close(grad, -(ratio * adv) / 4)


@pytest.mark.parametrize("fn", POLICY_FNS, ids=lambda f: f.__name__)
def test_policy_matches_float64_reference(fn):
    logp_new, logp_old, adv, w = random_policy_batch(seed=1)
    inputs = [x.clone() for x in (logp_new, logp_old, adv, w)]
    ref_obj, ref_grad = ref_policy(fn.__name__, logp_new, logp_old, adv)
    loss, obj, grad = policy_per_sample(fn, logp_new, logp_old, adv, w, **coefs(fn))
    np.testing.assert_allclose(obj.numpy(), ref_obj, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(loss.item(), -np.mean(w.numpy() * ref_obj), rtol=1e-12)
    np.testing.assert_allclose(grad.numpy(), -w.numpy() * ref_grad / len(adv), atol=1e-12)
    for before, after in zip(inputs, (logp_new, logp_old, adv, w), strict=True):
        assert torch.equal(before, after)  # inputs untouched


@pytest.mark.parametrize("fn", POLICY_FNS, ids=lambda f: f.__name__)
def test_policy_gradient_matches_finite_differences(fn):
    logp_new, logp_old, adv, w = random_policy_batch(n=64, seed=2)
    log_ratio = logp_new - logp_old
    kinks = t([math.log(1 - EPS), math.log(1 + EPS), math.log(C)])
    smooth = (log_ratio[:, None] - kinks).abs().min(dim=1).values > 1e-3  # stay off the kinks
    args = (logp_old[smooth], adv[smooth])
    weight = w[smooth]
    x = logp_new[smooth].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda ln: fn(ln, *args, weight=weight, **coefs(fn))[0], (x,))


def test_dual_clip_bounds_negative_advantages_and_equals_clip_otherwise():
    logp_new, logp_old, adv, _ = random_policy_batch(n=512, seed=3)
    _, obj_dual, _ = policy_per_sample(policy.dual_clip, logp_new, logp_old, adv, dual_clip=C)
    _, obj_clip, _ = policy_per_sample(policy.clip, logp_new, logp_old, adv)
    neg = adv < 0
    assert (obj_dual[neg] >= C * adv[neg] - 1e-12).all()
    assert (obj_clip[neg] < C * adv[neg]).any()  # the bound does bind somewhere in this batch
    torch.testing.assert_close(obj_dual[~neg], obj_clip[~neg])


def test_dual_clip_frac_counts_the_active_lower_bound():
    # active: A < 0 and r > c (idx 0, 5). Not: r < c (1, 2), A > 0 with r > c (3), A > 0 (4).
    ratio = t([4.0, 2.0, 0.5, 4.0, 1.0, 3.5])
    adv = t([-1.0, -1.0, -1.0, 1.0, 1.0, -2.0])
    logp_new, logp_old = ratio.log(), t([0.0] * 6)
    _, obj, grad = policy_per_sample(policy.dual_clip, logp_new, logp_old, adv, dual_clip=3.0)
    _, info = policy.dual_clip(logp_new, logp_old, adv, dual_clip=3.0)
    torch.testing.assert_close(info["dual_clip_frac"], t(2 / 6))
    torch.testing.assert_close(obj[[0, 5]], t([-3.0, -6.0]))  # c A
    torch.testing.assert_close(grad[[0, 5]], t([0.0, 0.0]))
    torch.testing.assert_close(info["clipfrac"], t(5 / 6))  # every r but 1.0 is outside [0.8, 1.2]


@pytest.mark.parametrize("fn", CLIPPED_POLICY_FNS, ids=lambda f: f.__name__)
def test_clip_boundaries_count_as_not_clipped(fn):
    # r = 1 +- eps exactly (both exact in float64) is not clipped; r = 1.5 is
    ratio, logp_old, adv = t([1.25, 0.75, 1.5]), t([0.0] * 3), t([1.0, -1.0, 1.0])
    _, info = fn(ratio.log(), logp_old, adv, clip_eps=0.25)
    torch.testing.assert_close(info["clipfrac"], t(1 / 3))


def test_dual_clip_tie_at_r_equal_c_is_not_counted():
    # A < 0, r = c = 2: min(r A, clip(r) A) = 2A = c A, the bound is met, not active
    logp_new, logp_old, adv = t([math.log(2.0), 0.0]), t([0.0, 0.0]), t([-1.0, -1.0])
    loss, info = policy.dual_clip(logp_new, logp_old, adv, dual_clip=2.0)
    torch.testing.assert_close(info["dual_clip_frac"], t(0.0))
    torch.testing.assert_close(loss, t((2.0 + 1.0) / 2))


def test_policy_diagnostics_hand_computed():
    ratio = t([2.0, 0.5, 1.0, 1.1])
    logp_old = t([-1.0, -0.3, -2.0, -0.7])
    _, info = policy.clip(logp_old + ratio.log(), logp_old, t([1.0, -1.0, 0.5, 2.0]), clip_eps=0.2)
    k3 = [1 - math.log(2), -0.5 + math.log(2), 0.0, 0.1 - math.log(1.1)]
    torch.testing.assert_close(info["approx_kl"], t(sum(k3) / 4))
    torch.testing.assert_close(info["approx_kl_k1"], t(-math.log(1.1) / 4))  # log 2 - log 2 cancel
    torch.testing.assert_close(info["clipfrac"], t(0.5))  # r = 2 and r = 0.5
    torch.testing.assert_close(info["dual_clip_frac"], t(0.0))


def test_clipfrac_of_unclipped_variants_is_measured_at_the_reference_range():
    ratio = t([1.05, 1.15, 0.7, 1.4, 0.85])  # |r - 1| > 0.2: 0.7 and 1.4
    assert policy.CLIPFRAC_REFERENCE_EPS == 0.2
    for fn in (policy.vanilla, policy.kl_penalty):
        _, info = fn(ratio.log(), t([0.0] * 5), t([1.0] * 5))
        torch.testing.assert_close(info["clipfrac"], t(2 / 5))


@pytest.mark.parametrize("fn", POLICY_FNS, ids=lambda f: f.__name__)
def test_policy_info_keys_and_detached(fn):
    logp_new, logp_old, adv, _ = random_policy_batch(n=16)
    logp_new.requires_grad_(True)
    _, info = fn(logp_new, logp_old, adv)
    assert tuple(info) == policy.INFO_KEYS
    for v in info.values():
        assert v.dim() == 0 and not v.requires_grad


@pytest.mark.parametrize("fn", POLICY_FNS, ids=lambda f: f.__name__)
def test_policy_weight_ones_changes_nothing_and_weight_scales(fn):
    logp_new, logp_old, adv, w = random_policy_batch(n=32, seed=4)
    plain, info = fn(logp_new, logp_old, adv, **coefs(fn))
    ones, info_ones = fn(logp_new, logp_old, adv, weight=torch.ones_like(adv), **coefs(fn))
    torch.testing.assert_close(ones, plain, rtol=0, atol=0)
    assert all(torch.equal(info[k], info_ones[k]) for k in info)
    twice, _ = fn(logp_new, logp_old, adv, weight=2 * torch.ones_like(adv), **coefs(fn))
    torch.testing.assert_close(twice, 2 * plain)
    _, obj, _ = policy_per_sample(fn, logp_new, logp_old, adv, **coefs(fn))
    weighted, _ = fn(logp_new, logp_old, adv, weight=w, **coefs(fn))
    torch.testing.assert_close(weighted, -(w * obj).mean())


def test_kl_penalty_k3_is_nonnegative_zero_at_ratio_one_and_hand_computed():
    logp_new, logp_old, _, _ = random_policy_batch(n=128, seed=5)
    zero_adv = torch.zeros(128, dtype=torch.float64)
    _, obj, _ = policy_per_sample(policy.kl_penalty, logp_new, logp_old, zero_adv, kl_beta=1.0)
    assert (-obj >= 0).all()  # with A = 0 the objective is -k3
    _, obj1, grad1 = policy_per_sample(policy.kl_penalty, logp_old, logp_old, zero_adv, kl_beta=1.0)
    torch.testing.assert_close(obj1, zero_adv)
    torch.testing.assert_close(grad1, zero_adv)  # and zero gradient at r = 1
    # one sample: r = 2, A = 0.5, beta = 0.5: L = 2 * 0.5 - 0.5 * (1 - log 2)
    loss, info = policy.kl_penalty(t([math.log(2) - 1]), t([-1.0]), t([0.5]), kl_beta=0.5)
    torch.testing.assert_close(loss, t(-(1.0 - 0.5 * (1 - math.log(2)))))
    torch.testing.assert_close(info["approx_kl"], t(1 - math.log(2)))


@pytest.mark.parametrize(
    ("kl", "expected"),
    [(0.001, 0.5), (0.006, 0.5), (0.007, 1), (0.01, 1), (0.0149, 1), (0.016, 2), (1.0, 2)],
)
def test_adaptive_kl_coefficient(kl, expected):
    # target 0.01: halve below 0.01 / 1.5 = 0.00667, double above 0.01 * 1.5 = 0.015
    assert AdaptiveKLCoefficient(target=0.01).next(1.0, kl) == expected


def test_adaptive_kl_coefficient_band_edges_keep_beta():
    schedule = AdaptiveKLCoefficient(initial=0.3, target=0.02)
    assert schedule.next(0.3, 0.02 / 1.5) == 0.3
    assert schedule.next(0.3, 0.02 * 1.5) == 0.3


def test_fixed_kl_coefficient_never_moves():
    assert FixedKLCoefficient(initial=0.4).next(0.4, 10.0) == 0.4


# ----- value losses -----------------------------------------------------------------------------


@pytest.mark.parametrize("fn", VALUE_FNS, ids=lambda f: f.__name__)
def test_value_matches_float64_reference(fn):
    values, old, returns, w = random_value_batch(seed=6)
    ref_l, ref_grad = ref_value(fn.__name__, values, old, returns)
    loss, per, grad = value_per_sample(fn, values, old, returns, w, **coefs(fn))
    np.testing.assert_allclose(per.numpy(), ref_l, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(loss.item(), np.mean(w.numpy() * ref_l), rtol=1e-12)
    np.testing.assert_allclose(grad.numpy(), w.numpy() * ref_grad / len(values), atol=1e-12)


def test_clipped_value_equals_mse_when_value_has_not_moved():
    values, _, returns, w = random_value_batch(seed=7)
    same, _ = value.clipped(values, values.clone(), returns, weight=w)
    plain, _ = value.mse(values, values.clone(), returns, weight=w)
    torch.testing.assert_close(same, plain)


def test_clipped_value_binds_in_a_hand_computed_case():
    # sample 0: V_old = 0, V = 1, R = 1 -> V_clip = 0.2: max(0, 0.64) = 0.64, no gradient
    # sample 1: V_old = 0, V = 0.1, R = 0.5 -> inside the clip: 0.16 for both
    values, old, returns = t([1.0, 0.1]), t([0.0, 0.0]), t([1.0, 0.5])
    loss, _, grad = value_per_sample(value.clipped, values, old, returns, clip_eps=0.2)
    plain, _ = value.mse(values, old, returns)
    torch.testing.assert_close(loss, t(0.5 * (0.64 + 0.16) / 2))
    torch.testing.assert_close(plain, t(0.5 * 0.16 / 2))
    assert loss > plain
    torch.testing.assert_close(grad, t([0.0, (0.1 - 0.5) / 2]))


def test_value_clipfrac_hand_computed():
    values, old = t([0.1, 0.5, -0.3, 0.2, -0.2]), t([0.0] * 5)
    _, info = value.clipped(values, old, t([0.0] * 5), clip_eps=0.2)
    torch.testing.assert_close(info["value_clipfrac"], t(2 / 5))  # |0.5|, |-0.3|; 0.2 is not > 0.2
    for fn in (value.mse, value.huber):
        assert fn(values, old, t([0.0] * 5))[1]["value_clipfrac"].item() == 0.0


def test_huber_delta_sets_the_quadratic_region():
    values, zeros = t([1.5, -3.0]), t([0.0] * 2)
    _, per, grad = value_per_sample(value.huber, values, zeros, zeros, delta=2.0)
    torch.testing.assert_close(per, t([1.125, 4.0]))  # 0.5 * 1.5^2 | 2 * (3 - 1)
    torch.testing.assert_close(grad, t([1.5, -2.0]) / 2)


def test_huber_is_mse_on_small_errors_and_linear_beyond_delta():
    values, old = t([0.3, -0.5, 3.0]), t([0.0] * 3)
    _, per, grad = value_per_sample(value.huber, values, old, t([0.0] * 3), delta=1.0)
    torch.testing.assert_close(per, t([0.045, 0.125, 2.5]))  # 0.5 e^2 | 1 * (3 - 0.5)
    torch.testing.assert_close(grad, t([0.3, -0.5, 1.0]) / 3)  # slope capped at delta


@pytest.mark.parametrize("fn", VALUE_FNS, ids=lambda f: f.__name__)
def test_value_weight_info_and_gradcheck(fn):
    values, old, returns, w = random_value_batch(n=32, seed=8)
    plain, info = fn(values, old, returns, **coefs(fn))
    ones, _ = fn(values, old, returns, weight=torch.ones_like(values), **coefs(fn))
    torch.testing.assert_close(ones, plain, rtol=0, atol=0)
    twice, _ = fn(values, old, returns, weight=2 * torch.ones_like(values), **coefs(fn))
    torch.testing.assert_close(twice, 2 * plain)
    assert tuple(info) == value.INFO_KEYS and all(v.dim() == 0 for v in info.values())
    x = values.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: fn(v, old, returns, weight=w, **coefs(fn))[0], (x,))


# ----- the loss entry: sub-entries, coefficients, schema ----------------------------------------


def test_ppo_loss_combines_its_terms_with_its_coefficients():
    logp_new, logp_old, adv, _ = random_policy_batch(n=16, seed=9)
    values, old, returns, _ = random_value_batch(n=16, seed=9)
    entropy = torch.rand(16, dtype=torch.float64)
    loss = PPOLoss(policy=policy.clip, value=value.mse, vf_coef=0.7, ent_coef=0.05)
    total, info = loss(logp_new, logp_old, adv, values, old, returns, entropy)
    p, _ = policy.clip(logp_new, logp_old, adv)
    v, _ = value.mse(values, old, returns)
    torch.testing.assert_close(total, p + 0.7 * v - 0.05 * entropy.mean())
    torch.testing.assert_close(info["policy_loss"], p)
    torch.testing.assert_close(info["value_loss"], v)


def test_ppo_loss_passes_kl_beta_only_to_a_policy_that_declares_it():
    logp_new, logp_old, adv, _ = random_policy_batch(n=8, seed=10)
    values, old, returns, _ = random_value_batch(n=8, seed=10)
    entropy = torch.zeros(8, dtype=torch.float64)
    penalised = PPOLoss(
        policy=policy.kl_penalty,
        value=value.mse,
        vf_coef=0.0,
        kl_coef=FixedKLCoefficient(initial=0.3),
    )
    total, _ = penalised(logp_new, logp_old, adv, values, old, returns, entropy, kl_beta=0.3)
    torch.testing.assert_close(total, policy.kl_penalty(logp_new, logp_old, adv, kl_beta=0.3)[0])
    assert penalised.initial_kl_beta == 0.3
    assert PPOLoss(policy=policy.clip, value=value.mse).initial_kl_beta is None


def test_a_kl_schedule_and_a_kl_penalised_policy_come_together():
    with pytest.raises(ValueError, match="needs a KL coefficient schedule"):
        PPOLoss(policy=policy.kl_penalty, value=value.mse)
    with pytest.raises(ValueError, match="only a KL-penalised policy loss"):
        PPOLoss(policy=policy.clip, value=value.mse, kl_coef=AdaptiveKLCoefficient())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            "loss=dual_clip loss.policy.dual_clip=1.0",
            "loss.policy.dual_clip=1.0: should be greater than 1",
        ),
        ("loss.policy.clip_eps=1.5", "loss.policy.clip_eps=1.5: should be less than 1"),
        ("loss.policy.clip_eps=0", "loss.policy.clip_eps=0: should be greater than 0"),
        ("loss.policy.clip_eps=nan", "loss.policy.clip_eps=nan: should be a finite number"),
        (
            "+loss.policy.clip_epss=0.1",
            "loss.policy.clip_epss: unknown key for clip; valid keys: clip_eps",
        ),
        (
            "loss=vanilla +loss.policy.clip_eps=0.1",
            "loss.policy.clip_eps: unknown key for vanilla; valid keys: none",
        ),
        (
            "loss=value_clip loss.value.clip_eps=0.0",
            "loss.value.clip_eps=0.0: should be greater than 0",
        ),
        (
            "loss/value=huber loss.value.delta=-1.0",
            "loss.value.delta=-1.0: should be greater than 0",
        ),
        ("+loss.value.clip_eps=0.2", "loss.value.clip_eps: unknown key for mse; valid keys: none"),
        ("loss.vf_coef=-1", "loss.vf_coef=-1: should be greater than or equal to 0"),
        (
            "loss=kl_penalty loss.kl_coef.target=0",
            "loss.kl_coef.target=0: should be greater than 0",
        ),
        (
            "loss=kl_penalty loss.kl_coef.initial=-0.1",
            "loss.kl_coef.initial=-0.1: should be greater than or equal to 0",
        ),
        (
            "loss.value=clipped",
            "loss.value='clipped': a component entry; pick one with "
            "loss/value=clipped (an entry of conf/loss/value/)",
        ),
    ],
)
def test_loss_entry_problems_name_the_key(overrides, message):
    assert check_entry(compose_config(*overrides.split()).loss, "loss") == [message]


@pytest.mark.parametrize("entry", ["vanilla", "clip", "dual_clip", "value_clip", "kl_penalty"])
def test_every_loss_entry_checks_and_builds(entry):
    cfg = compose_config(f"loss={entry}")
    assert check_entry(cfg.loss, "loss") == []
    from ppo_lab.components import build

    built = build(cfg.loss)
    assert isinstance(built, PPOLoss)
    assert (built.kl_coef is not None) == (entry == "kl_penalty")


def test_every_coefficient_has_a_default_and_a_constraint():
    for fn in POLICY_FNS + VALUE_FNS:
        for name, p in config_parameters(fn).items():
            assert p.default is not p.empty, f"{fn.__name__}.{name} has no default"
            meta = typing.get_args(p.annotation)[1:]
            constraints = (annotated_types.BaseMetadata, annotated_types.GroupedMetadata)
            assert any(isinstance(m, constraints) for m in meta), name
    names = {fn.__name__: set(config_parameters(fn)) for fn in POLICY_FNS + VALUE_FNS}
    assert names == {
        "vanilla": set(),
        "clip": {"clip_eps"},
        "dual_clip": {"clip_eps", "dual_clip"},
        "kl_penalty": set(),
        "mse": set(),
        "clipped": {"clip_eps"},
        "huber": {"delta"},
    }


def test_minibatch_tensors_are_caller_inputs():
    for fn in POLICY_FNS:
        assert caller_inputs(fn)[:4] == ["logp_new", "logp_old", "advantages", "weight"]
    for fn in VALUE_FNS:
        assert caller_inputs(fn) == ["values", "old_values", "returns", "weight"]
