"""Running statistics, reward scaling and advantage normalization against numpy and hand math."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from torch import Tensor

from ppo_lab.components import build, check_entry, config_parameters
from ppo_lab.normalization import (
    Normalizers,
    RewardScaler,
    RunningMeanStd,
    normalize_advantages,
    normalizers,
)

from helpers import compose_config


def random_chunks(total: int, rng: np.random.Generator) -> list[int]:
    """Sizes summing to total, including empty and single-sample chunks."""
    sizes = [0, 1]
    while sum(sizes) < total:
        sizes.append(int(min(rng.integers(1, 60), total - sum(sizes))))
    rng.shuffle(sizes)
    return sizes


# ---------------------------------------------------------------- RunningMeanStd


@pytest.mark.parametrize("shape", [(), (3,), (2, 4)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_running_mean_std_merge_equals_numpy(shape, dtype):
    rng = np.random.default_rng(len(shape))
    data = rng.normal(loc=50.0, scale=3.0, size=(700, *shape))  # offset mean: stresses stability
    x = torch.as_tensor(data, dtype=dtype)
    rms = RunningMeanStd(shape)
    start = 0
    for size in random_chunks(len(data), rng):
        rms.update(x[start : start + size])
        start += size
    assert rms.count == len(data)
    expected = x.double().numpy()
    np.testing.assert_allclose(rms.mean.numpy(), expected.mean(axis=0), rtol=1e-12, atol=0)
    np.testing.assert_allclose(rms.var.numpy(), expected.var(axis=0), rtol=1e-9, atol=0)
    assert rms.mean.dtype == torch.float64 and rms.mean.shape == shape


def test_running_mean_std_reduces_all_leading_batch_dims():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(5, 7, 3))  # [T, N, obs_dim]
    a, b = RunningMeanStd((3,)), RunningMeanStd((3,))
    a.update(torch.as_tensor(data))
    b.update(torch.as_tensor(data.reshape(35, 3)))
    assert a.count == b.count == 35
    assert torch.equal(a.mean, b.mean) and torch.equal(a.m2, b.m2)
    np.testing.assert_allclose(a.var.numpy(), data.reshape(35, 3).var(axis=0), rtol=1e-12)
    single = RunningMeanStd((3,))
    single.update(torch.tensor([1.0, 2.0, 3.0]))  # one sample without a batch dim
    assert single.count == 1 and single.mean.tolist() == [1.0, 2.0, 3.0]


def test_running_mean_std_rejects_wrong_feature_shape():
    with pytest.raises(ValueError, match="expected"):
        RunningMeanStd((3,)).update(torch.zeros(4, 2))


def test_running_mean_std_before_update_is_identity():
    rms = RunningMeanStd((2,), epsilon=0.0)
    x = torch.tensor([[1.5, -2.0]])
    assert rms.count == 0
    torch.testing.assert_close(rms.normalize(x), x)


def test_normalize_denormalize_and_clip():
    rng = np.random.default_rng(1)
    data = rng.normal(loc=3.0, scale=2.0, size=(200, 2))
    rms = RunningMeanStd((2,))
    rms.update(torch.as_tensor(data))
    x = torch.as_tensor(data[:10], dtype=torch.float32)
    y = rms.normalize(x)
    expected = (data[:10] - data.mean(axis=0)) / np.sqrt(data.var(axis=0) + 1e-8)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert y.dtype == torch.float32
    torch.testing.assert_close(rms.denormalize(y), x)
    far = torch.tensor([[1e6, -1e6]], dtype=torch.float32)
    assert rms.normalize(far, clip=5.0).tolist() == [[5.0, -5.0]]
    assert x.tolist() == torch.as_tensor(data[:10], dtype=torch.float32).tolist()  # unchanged


def test_running_mean_std_state_dict_round_trip_is_exact():
    rng = np.random.default_rng(2)
    rms = RunningMeanStd((4,), epsilon=1e-6)
    for size in (3, 17, 1):
        rms.update(torch.as_tensor(rng.normal(size=(size, 4))))
    state = rms.state_dict()
    buffer = io.BytesIO()  # through a checkpoint file, as the trainer saves it
    torch.save(state, buffer)
    buffer.seek(0)
    restored = RunningMeanStd((4,))
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert restored.count == rms.count and restored.epsilon == rms.epsilon
    assert torch.equal(restored.mean, rms.mean) and torch.equal(restored.var, rms.var)
    batch = torch.as_tensor(rng.normal(size=(9, 4)))
    rms.update(batch)
    restored.update(batch)
    assert torch.equal(restored.mean, rms.mean) and torch.equal(restored.m2, rms.m2)
    assert not torch.equal(state["mean"], rms.mean)  # state_dict is a copy, not a live view
    with pytest.raises(ValueError, match="shape"):
        RunningMeanStd((3,)).load_state_dict(state)


def test_normalize_follows_every_change_of_the_statistics():
    """normalize reuses its mean and std between changes: an update, a loaded state or a
    population's in-place write into the statistics must each show in the next call."""
    rng = np.random.default_rng(3)
    rms = RunningMeanStd((3,))
    x = torch.as_tensor(rng.normal(size=(5, 3)), dtype=torch.float32)

    def by_hand() -> Tensor:
        std = torch.sqrt(rms.m2 / rms.count + rms.epsilon)
        return ((x.double() - rms.mean) / std).float()

    with torch.inference_mode():  # as the rollout first normalizes
        rms.update(torch.as_tensor(rng.normal(2.0, 3.0, size=(40, 3))))
        rms.normalize(x)
    first = rms.normalize(x)
    torch.testing.assert_close(first, by_hand())
    rms.update(torch.as_tensor(rng.normal(-1.0, 0.5, size=(40, 3))))
    assert not torch.allclose(rms.normalize(x), first)
    torch.testing.assert_close(rms.normalize(x), by_hand())
    other = RunningMeanStd((3,))
    other.update(torch.as_tensor(rng.normal(5.0, 1.0, size=(7, 3))))
    rms.load_state_dict(other.state_dict())
    torch.testing.assert_close(rms.normalize(x), by_hand())
    rms.m2[1] *= 4.0  # a write into the statistics, as a population's stacking does
    torch.testing.assert_close(rms.normalize(x), by_hand())
    assert rms.normalize(x.double()).dtype == torch.float64
    with torch.inference_mode():  # computed and kept while acting ...
        rms.normalize(x)
    weights = torch.ones(3, requires_grad=True)  # ... then used where autograd records
    rms.denormalize(x * weights).sum().backward()
    torch.testing.assert_close(weights.grad, (x * rms.std.float()).sum(0))


# ---------------------------------------------------------------- RewardScaler


def test_reward_scaler_hand_computed_with_reset():
    scaler = RewardScaler(num_envs=2, gamma=0.5, clip=100.0, epsilon=0.0)
    # step 1: G = [1, 2]; Var{1, 2} = 1/4; r' = r / (1/2)
    out = scaler(torch.tensor([1.0, 2.0]), torch.tensor([False, False]))
    torch.testing.assert_close(out, torch.tensor([2.0, 4.0]))
    # step 2: G = [.5 + 1, 1 + 0] = [1.5, 1]; Var{1, 2, 1.5, 1} = 11/64; env 0 ends -> G_0 = 0
    rewards, done = torch.tensor([1.0, 0.0]), torch.tensor([True, False])
    out = scaler(rewards, done)
    torch.testing.assert_close(out, torch.tensor([8 / math.sqrt(11), 0.0]))
    assert scaler.returns.tolist() == [0.0, 1.0]
    assert rewards.tolist() == [1.0, 0.0] and done.tolist() == [True, False]  # inputs unchanged
    # step 3: G = [0 + 2, .5 + 2] = [2, 2.5]; Var{1, 2, 1.5, 1, 2, 2.5} = 11/36; r' = 2 * 6/sqrt(11)
    out = scaler(torch.tensor([2.0, 2.0]), torch.tensor([0.0, 0.0]))  # float done works too
    torch.testing.assert_close(out, torch.tensor([12 / math.sqrt(11)] * 2))
    assert scaler.rms.count == 6


def test_a_whole_rollout_scales_as_the_hand_computed_steps():
    """The vectorised scan (what the trainer calls) on the three steps above, at once."""
    scaler = RewardScaler(num_envs=2, gamma=0.5, clip=100.0, epsilon=0.0)
    rewards = torch.tensor([[1.0, 2.0], [1.0, 0.0], [2.0, 2.0]])
    done = torch.tensor([[False, False], [True, False], [False, False]])
    out = scaler.scale_rollout(rewards, done)
    expected = [[2.0, 4.0], [8 / math.sqrt(11), 0.0], [12 / math.sqrt(11)] * 2]
    torch.testing.assert_close(out, torch.tensor(expected))
    assert scaler.returns.tolist() == [2.0, 2.5] and scaler.rms.count == 6
    torch.testing.assert_close(scaler.rms.var, torch.tensor(11 / 36, dtype=torch.float64))


@pytest.mark.parametrize("clip", [3.0, None])
def test_a_whole_rollout_scales_as_step_by_step_calls(clip):
    g = torch.Generator().manual_seed(0)
    stepwise = RewardScaler(num_envs=4, gamma=0.99, clip=clip)
    at_once = RewardScaler(num_envs=4, gamma=0.99, clip=clip)
    for _ in range(3):  # consecutive rollouts carry G and the statistics over
        rewards = torch.randn(50, 4, generator=g) * 5 + 1
        done = torch.rand(50, 4, generator=g) < 0.05
        expected = torch.stack([stepwise(rewards[t], done[t]) for t in range(50)])
        torch.testing.assert_close(at_once.scale_rollout(rewards, done), expected)
        torch.testing.assert_close(at_once.returns, stepwise.returns)
        torch.testing.assert_close(at_once.rms.mean, stepwise.rms.mean)
        torch.testing.assert_close(at_once.rms.m2, stepwise.rms.m2)
        assert at_once.rms.count == stepwise.rms.count


def test_reward_scaler_clips():
    scaler = RewardScaler(num_envs=1, gamma=0.99, clip=5.0)
    # one sample: Var[G] = 0, so r / sqrt(eps) is huge and gets clipped; then G = [3, 2.97 - 1e9]
    # has std ~ 1e9 / 2, so -1e9 scales to ~ -2, inside the clip
    assert scaler(torch.tensor([3.0]), torch.tensor([False])).tolist() == [5.0]
    assert scaler(torch.tensor([-1e9]), torch.tensor([False])).item() == pytest.approx(-2.0)
    negative = RewardScaler(num_envs=1, gamma=0.99, clip=5.0)
    assert negative(torch.tensor([-3.0]), torch.tensor([False])).tolist() == [-5.0]
    unclipped = RewardScaler(num_envs=1, gamma=0.99, clip=None)
    assert unclipped(torch.tensor([3.0]), torch.tensor([False])).item() > 1e4


def test_reward_scaler_keeps_its_buffer_and_dtype():
    scaler = RewardScaler(num_envs=3, gamma=0.9)
    buffer = scaler.returns
    out = scaler(torch.ones(3, dtype=torch.float32), torch.zeros(3, dtype=torch.bool))
    assert scaler.returns is buffer and out.dtype == torch.float32
    with pytest.raises(ValueError, match="num_envs"):
        scaler(torch.ones(4), torch.zeros(4, dtype=torch.bool))


def test_reward_scaler_state_dict_round_trip_is_exact():
    g = torch.Generator().manual_seed(0)
    steps = [(torch.randn(4, generator=g), torch.rand(4, generator=g) < 0.2) for _ in range(20)]
    scaler = RewardScaler(num_envs=4, gamma=0.99, clip=3.0)
    for r, d in steps[:10]:
        scaler(r, d)
    buffer = io.BytesIO()
    torch.save(scaler.state_dict(), buffer)
    buffer.seek(0)
    restored = RewardScaler(num_envs=4, gamma=0.5, clip=10.0)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert restored.gamma == 0.99 and restored.clip == 3.0
    for r, d in steps[10:]:
        assert torch.equal(scaler(r, d), restored(r, d))
    assert torch.equal(scaler.returns, restored.returns)


# ---------------------------------------------------------------- normalize_advantages


def test_normalize_advantages():
    adv = torch.randn(64, 8, generator=torch.Generator().manual_seed(3)) * 7 + 4
    before = adv.clone()
    out = normalize_advantages(adv)
    assert torch.equal(adv, before)
    assert abs(out.mean().item()) < 1e-6
    assert out.std().item() == pytest.approx(1.0, abs=1e-6)
    expected = (adv.numpy() - adv.numpy().mean()) / (adv.numpy().std(ddof=1) + 1e-8)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)
    assert normalize_advantages(torch.tensor([2.5])).tolist() == [0.0]


# ---------------------------------------------------------------- config group


def built_normalizers(*overrides: str) -> Normalizers:
    cfg = compose_config(*overrides)
    return build(cfg.normalization, obs_shape=(3,), num_envs=2, gamma=0.9, device="cpu")


@pytest.mark.parametrize("name", ["none", "adv", "obs_reward"])
def test_entry_checks_and_spells_out_every_setting(name):
    cfg = compose_config(f"normalization={name}")
    assert check_entry(cfg.normalization, "normalization") == []
    assert set(cfg.normalization) - {"_target_", "_partial_"} == set(config_parameters(normalizers))


def test_entries_mean_what_they_say():
    def what(n: Normalizers) -> tuple:
        return (
            n.advantage_scope,
            n.obs is not None,
            n.reward is not None,
            n.value_target is not None,
        )

    assert what(built_normalizers("normalization=adv")) == ("minibatch", False, False, False)
    assert what(built_normalizers("normalization=none")) == ("none", False, False, False)
    assert what(built_normalizers("normalization=obs_reward")) == ("minibatch", True, True, False)
    scaler = built_normalizers("normalization=obs_reward", "normalization.reward_clip=2.5").reward
    assert scaler is not None and scaler.clip == 2.5 and scaler.gamma == 0.9


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("normalization.advantage_scope=epoch", "normalization.advantage_scope"),
        ("normalization.advantage_scope=true", "normalization.advantage_scope"),
        ("normalization.obs_clip=0.0", "normalization.obs_clip"),
        ("normalization.reward_clip=-1.0", "normalization.reward_clip"),
        ("normalization.observation=yes", "normalization.observation"),
        ("+normalization.rewards=true", "normalization.rewards"),
    ],
)
def test_bad_settings_are_rejected_naming_the_key(override, key):
    problems = check_entry(compose_config(override).normalization, "normalization")
    assert len(problems) == 1 and problems[0].startswith(key), problems
