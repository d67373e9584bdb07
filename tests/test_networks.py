"""Every `network` entry: the spaces it claims, its distributions against torch's reference ones,
the published architectures and inits, gradient isolation of separate critics, clear mismatch
errors (from the factories and, through the app, as an invalid configuration)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

from ppo_lab.components import build
from ppo_lab.envs import env_actions
from ppo_lab.envs.gymnasium_backend import GymnasiumVectorEnv
from ppo_lab.networks import ActorCritic, GaussianHead, impala_cnn, mlp, nature_cnn
from ppo_lab.normalization import normalizers
from ppo_lab.rollout import Rollout
from ppo_lab.train import collect_rollout, evaluate_rollout

from helpers import REPO, group_entries

VECTOR = gym.spaces.Box(-1.0, 1.0, (6,), np.float32)
ATARI = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)  # envpool: channels-first frame stack
PIXELS = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)  # gymnasium pixel envs: channels-last
ACTIONS = {
    "discrete": gym.spaces.Discrete(5),
    "multidiscrete": gym.spaces.MultiDiscrete([3, 2, 4]),
    "box": gym.spaces.Box(-1.0, 1.0, (3,), np.float32),
}
# What each entry claims to read: the group folder is the registry, so a new entry must be added.
CLAIMS = {"mlp": [VECTOR], "nature_cnn": [ATARI, PIXELS], "impala_cnn": [ATARI, PIXELS]}
REFUSES = {"mlp": [ATARI, PIXELS], "nature_cnn": [VECTOR], "impala_cnn": [VECTOR]}
B = 3


def build_entry(
    compose_cfg, entry: str, obs_space: gym.Space, action_space: gym.Space, *overrides: str
) -> ActorCritic:
    cfg = compose_cfg(f"network={entry}", *overrides)
    return build(cfg.network, observation_space=obs_space, action_space=action_space)


def sample_obs(space: gym.Space, n: int = B) -> torch.Tensor:
    space.seed(0)
    return torch.as_tensor(np.stack([space.sample() for _ in range(n)]))


def test_every_entry_has_claims():
    assert sorted(CLAIMS) == group_entries("network")


@pytest.mark.parametrize("kind", sorted(ACTIONS))
@pytest.mark.parametrize(
    ("entry", "obs_space"), [(e, s) for e, spaces in CLAIMS.items() for s in spaces]
)
def test_outputs_are_the_right_distributions(compose_cfg, entry, obs_space, kind):
    """log-prob and entropy of each head equal torch's distribution of the right kind."""
    torch.manual_seed(0)
    action_space = ACTIONS[kind]
    net = build_entry(compose_cfg, entry, obs_space, action_space)
    obs = sample_obs(obs_space)
    params = net.policy_params(obs)
    actions = net.act(obs)
    logp, entropy, values = net.evaluate(obs, actions)
    assert values.shape == (B,) and torch.allclose(values, net.value(obs))
    if kind == "discrete":
        dist = net.head.distribution(params)
        assert isinstance(dist, torch.distributions.Categorical)
        assert params.shape == (B, action_space.n) and actions.dtype == torch.int64
    elif kind == "box":
        dist = net.head.distribution(params)
        assert isinstance(dist, torch.distributions.Independent)
        assert isinstance(dist.base_dist, torch.distributions.Normal)
        assert dist.batch_shape == (B,) and dist.event_shape == (3,)
    else:  # one categorical per dimension: log pi(a) = sum_k log pi_k(a_k)
        assert params.shape == (B, int(action_space.nvec.sum()))
        parts = [
            torch.distributions.Categorical(logits=p)
            for p in params.split(action_space.nvec.tolist(), -1)
        ]
        dist = None
        ref_logp = sum(d.log_prob(actions[:, k]) for k, d in enumerate(parts))
        ref_entropy = sum(d.entropy() for d in parts)
    if dist is not None:
        ref_logp, ref_entropy = dist.log_prob(actions), dist.entropy()
    torch.testing.assert_close(logp, ref_logp)
    torch.testing.assert_close(entropy, ref_entropy)


@pytest.mark.parametrize(
    ("entry", "obs_space"), [(e, s) for e, spaces in REFUSES.items() for s in spaces]
)
def test_mismatched_observations_raise_naming_the_network_to_use(compose_cfg, entry, obs_space):
    expected = "network=mlp" if entry != "mlp" else "network=nature_cnn"
    with pytest.raises(ValueError, match=expected):
        build_entry(compose_cfg, entry, obs_space, ACTIONS["discrete"])


def test_too_small_images_raise_clearly():
    with pytest.raises(ValueError, match="too small"):
        nature_cnn(gym.spaces.Box(0, 255, (4, 20, 20), np.uint8), ACTIONS["discrete"])


@pytest.mark.parametrize("entry", ["mlp", "nature_cnn", "impala_cnn"])
def test_critic_only_backward_leaves_the_actor_without_gradient(compose_cfg, entry):
    obs_space = CLAIMS[entry][0]
    net = build_entry(compose_cfg, entry, obs_space, ACTIONS["box"], "network.shared=false")
    assert not net.shared
    net.value(sample_obs(obs_space)).pow(2).mean().backward()
    actor = [*net.actor_encoder.parameters(), *net.head.parameters()]
    critic = [*net.critic_encoder.parameters(), *net.value_head.parameters()]
    assert all(p.grad is None for p in actor)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in critic)


@pytest.mark.parametrize("factory", [nature_cnn, impala_cnn])
def test_cnns_share_their_trunk_by_default(factory):
    net = factory(ATARI, ACTIONS["discrete"])
    assert net.shared and net.critic_encoder is None
    net.value(sample_obs(ATARI)).sum().backward()
    assert all(p.grad is not None for p in net.actor_encoder.parameters())
    assert all(p.grad is None for p in net.head.parameters())


@pytest.mark.parametrize("factory", [nature_cnn, impala_cnn])
def test_uint8_pixels_are_divided_by_255_inside(factory):
    torch.manual_seed(0)
    net = factory(ATARI, ACTIONS["discrete"])
    obs = sample_obs(ATARI)
    torch.testing.assert_close(net.policy_params(obs), net.policy_params(obs.float() / 255))
    torch.testing.assert_close(net.value(obs), net.value(obs.float() / 255))


def test_channels_last_images_are_read_as_channels_first():
    """[H, W, C] observations give the same outputs as their [C, H, W] transpose."""
    torch.manual_seed(0)
    last = nature_cnn(PIXELS, ACTIONS["discrete"])
    first = nature_cnn(gym.spaces.Box(0, 255, (3, 64, 64), np.uint8), ACTIONS["discrete"])
    first.load_state_dict(last.state_dict())
    obs = sample_obs(PIXELS)
    channels_first = obs.permute(0, 3, 1, 2)
    torch.testing.assert_close(last.policy_params(obs), first.policy_params(channels_first))


def test_nature_cnn_is_mnih_2015():
    """conv 32 8x8/4, 64 4x4/2, 64 3x3/1, linear 512: 84 -> 20 -> 9 -> 7, 1,686,693 parameters
    with 4 actions (the count CleanRL's ppo_atari reports)."""
    net = nature_cnn(ATARI, gym.spaces.Discrete(4))
    layers = [m for m in net.actor_encoder.modules() if not isinstance(m, torch.nn.Sequential)][
        1:
    ]  # after the pixel scaling
    assert [type(m).__name__ for m in layers] == [
        "Conv2d",
        "ReLU",
        "Conv2d",
        "ReLU",
        "Conv2d",
        "ReLU",
        "Flatten",
        "Linear",
        "ReLU",
    ]
    convs = [m for m in layers if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (32, (8, 8), (4, 4)),
        (64, (4, 4), (2, 2)),
        (64, (3, 3), (1, 1)),
    ]
    linear = [m for m in layers if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(64 * 7 * 7, 512)]
    conv_params = sum(c * k * k * o + o for c, k, o in [(4, 8, 32), (32, 4, 64), (64, 3, 64)])
    expected = conv_params + (3136 * 512 + 512) + (512 * 4 + 4) + (512 + 1)
    assert expected == 1_686_693
    assert sum(p.numel() for p in net.parameters()) == expected


def test_impala_cnn_is_espeholt_2018():
    """3 stacks (16, 32, 32) of conv + max-pool/2 + 2 residual blocks: 84 -> 42 -> 21 -> 11."""
    net = impala_cnn(ATARI, gym.spaces.Discrete(4))
    convs = [m for m in net.actor_encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 3 * 5  # per stack: 1 conv + 2 residual blocks of 2 convs
    assert [c.out_channels for c in convs[::5]] == [16, 32, 32]
    pools = [m for m in net.actor_encoder.modules() if isinstance(m, torch.nn.MaxPool2d)]
    assert len(pools) == 3 and all(p.stride == 2 and p.kernel_size == 3 for p in pools)
    linear = [m for m in net.actor_encoder.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(32 * 11 * 11, 256)]


def gram(weight: torch.Tensor) -> torch.Tensor:
    """W W^T of a weight flattened to [out, fan_in]: gain^2 I for an orthogonal init (out <= in)."""
    w = weight.detach().reshape(weight.shape[0], -1)
    return w @ w.T


@pytest.mark.parametrize("factory", [nature_cnn, impala_cnn, mlp])
def test_orthogonal_init_gains(factory):
    """Hidden layers sqrt(2) (Nature CNN convs and every trunk linear), policy 0.01, value 1."""
    obs_space = VECTOR if factory is mlp else ATARI
    net = factory(obs_space, ACTIONS["discrete"])
    eye = torch.eye
    torch.testing.assert_close(gram(net.head.linear.weight), 0.01**2 * eye(5))
    torch.testing.assert_close(gram(net.value_head.weight), eye(1))
    layers = [m for m in net.actor_encoder.modules() if isinstance(m, torch.nn.Linear)]
    if factory is nature_cnn:
        layers += [m for m in net.actor_encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    for layer in layers:
        w = layer.weight.reshape(layer.weight.shape[0], -1)
        if w.shape[0] <= w.shape[1]:
            torch.testing.assert_close(gram(w), 2 * eye(w.shape[0]), atol=1e-4, rtol=1e-4)
        assert not layer.bias.any()


def test_gaussian_head_stores_the_raw_unclipped_action():
    """The rollout keeps the sampled action (outside the bounds here); only the env gets it
    clipped, and the stored log-prob is that of the raw sample."""
    torch.manual_seed(0)
    envs = GymnasiumVectorEnv("MountainCarContinuous-v0", 2, {})
    net = mlp(envs.single_observation_space, envs.single_action_space)
    assert isinstance(net.head, GaussianHead)
    with torch.no_grad():
        net.head.log_std.fill_(math.log(3.0))  # sigma = 3 >> the [-1, 1] bounds
    norm = normalizers((2,), 2, 0.99, "cpu")
    buf = Rollout.allocate(
        16, 2, envs.single_observation_space, envs.single_action_space, torch.device("cpu")
    )
    try:
        collect_rollout(envs, net, buf, envs.reset(seed=0), norm, None)
    finally:
        envs.close()
    assert buf.actions.abs().max() > 1.5, "stored actions are the raw samples"
    clipped = env_actions(buf.actions, envs.single_action_space)
    assert np.abs(clipped).max() <= 1.0
    logprobs = evaluate_rollout(net, buf, norm).logprobs
    with torch.no_grad():
        dist = net.head.distribution(net.policy_params(buf.flat(buf.obs)))
        torch.testing.assert_close(buf.flat(logprobs), dist.log_prob(buf.flat(buf.actions)))


def test_a_shared_trunk_records_log_probs_and_values_while_acting():
    """No second pass over the rollout for a shared trunk: what the acting pass recorded is
    what a fresh batched pass computes, and it is what `evaluate_rollout` hands the update."""
    torch.manual_seed(0)
    envs = GymnasiumVectorEnv("CartPole-v1", 3, {})
    net = mlp(envs.single_observation_space, envs.single_action_space, shared=True)
    norm = normalizers((4,), 3, 0.99, "cpu")
    space, actions = envs.single_observation_space, envs.single_action_space
    buf = Rollout.allocate(16, 3, space, actions, torch.device("cpu"), record_while_acting=True)
    try:
        collect_rollout(envs, net, buf, envs.reset(seed=0), norm, None)
    finally:
        envs.close()
    recorded = evaluate_rollout(net, buf, norm)
    fresh = evaluate_rollout(net, buf, norm, fresh=True)
    torch.testing.assert_close(recorded.logprobs, fresh.logprobs)
    torch.testing.assert_close(recorded.values, fresh.values)
    torch.testing.assert_close(recorded.next_values, fresh.next_values)
    assert buf.acted is not None and recorded.logprobs.data_ptr() == buf.acted[0].data_ptr()


@pytest.mark.parametrize(
    ("overrides", "advice"),
    [
        (["network=nature_cnn"], "network=mlp"),  # CartPole: vector observations
        (["env=atari", "network=mlp"], "network=nature_cnn"),
    ],
)
def test_mismatch_is_an_invalid_configuration_before_training(tmp_path, overrides, advice):
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "ppo_lab", *overrides, "logger=none", f"hydra.run.dir={run_dir}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "Invalid configuration" in proc.stderr and advice in proc.stderr
    assert "Traceback" not in proc.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "invalid_config"
    assert not (run_dir / "metrics.jsonl").exists() or not (run_dir / "metrics.jsonl").read_text()
