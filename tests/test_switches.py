"""The speed switches: `compile=true` and `amp=bf16` (and on a GPU `cuda_graphs=true`) train
CartPole as the plain run does, and `env/backend=envpool_async` exactly as `env/backend=envpool`
does.

Each switch is checked twice: its hot path against the eager float32 one on the same inputs
(closeness, not equality: compiled kernels fuse arithmetic, bfloat16 keeps 8 bits of mantissa),
and a real short run that learns. CUDA variants skip, saying so, where there is no GPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import ppo_lab.config
from ppo_lab.components import ConfigError, build
from ppo_lab.config import validate
from ppo_lab.networks import mlp, nature_cnn
from ppo_lab.population.packing import check_packable
from ppo_lab.train import Minibatch, minibatch_loss, train

from helpers import compose_config

CARTPOLE_OBS = gym.spaces.Box(-5.0, 5.0, (4,), np.float32)
NO_GPU = "needs a CUDA device (none here)"


def cartpole_minibatch(size: int = 64) -> tuple[Minibatch, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    batch = Minibatch(
        obs=torch.randn(size, 4, generator=gen),
        actions=torch.randint(0, 2, (size,), generator=gen),
        logp_old=torch.log(torch.full((size,), 0.5)) + 0.1 * torch.randn(size, generator=gen),
        advantages=torch.randn(size, generator=gen),
        old_values=torch.randn(size, generator=gen),
    )
    return batch, torch.randn(size, generator=gen)


def loss_and_gradients(agent, loss, batch, targets, fn=minibatch_loss):
    agent.zero_grad(set_to_none=True)
    total, info, _ = fn(agent, loss, batch, targets, True, None)
    total.backward()
    return total.detach(), info, [p.grad.clone() for p in agent.parameters()]


def short_run(tmp_path: Path, name: str, *overrides: str) -> dict:
    """The default CartPole recipe on 40k steps (W&B off): its summary."""
    settings = validate(
        compose_config("logger=none", "total_timesteps=40000", "eval_episodes=5", *overrides)
    )
    return train(settings, tmp_path / name, {}, name)


@pytest.mark.slow
def test_the_compiled_minibatch_loss_and_its_gradient_equal_the_eager_ones():
    torch.manual_seed(0)
    agent = mlp(CARTPOLE_OBS, gym.spaces.Discrete(2))
    loss = build(compose_config().loss)
    batch, targets = cartpole_minibatch()
    eager = loss_and_gradients(agent, loss, batch, targets)
    compiled = loss_and_gradients(agent, loss, batch, targets, torch.compile(minibatch_loss))
    torch.testing.assert_close(compiled[0], eager[0], rtol=1e-5, atol=1e-6)
    for key in ("policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac"):
        torch.testing.assert_close(compiled[1][key], eager[1][key], rtol=1e-5, atol=1e-6)
    for got, want in zip(compiled[2], eager[2], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "network, obs_space",
    [
        (mlp, CARTPOLE_OBS),
        (nature_cnn, gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)),
    ],
    ids=["mlp", "nature_cnn"],
)
def test_bf16_encoders_hand_float32_outputs_close_to_the_float32_network(network, obs_space):
    torch.manual_seed(0)
    agent = network(obs_space, gym.spaces.Discrete(4))
    obs = torch.as_tensor(np.stack([obs_space.sample() for _ in range(16)]))
    actions = torch.randint(0, 4, (16,))
    want = agent.evaluate(obs, actions)
    agent.autocast_dtype = torch.bfloat16
    got = agent.evaluate(obs, actions)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == torch.float32
        assert not torch.equal(g, w)  # bfloat16 did compute them
        torch.testing.assert_close(g, w, rtol=0.05, atol=0.02)
    got[0].sum().backward()  # gradients reach the float32 parameters through the autocast
    assert all(p.grad is not None for p in agent.actor_encoder.parameters())


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> dict:
    return short_run(tmp_path_factory.mktemp("plain"), "plain")


@pytest.mark.slow
@pytest.mark.parametrize("switch", ["compile=true", "amp=bf16"])
def test_a_switch_trains_cartpole_as_the_plain_run_does(tmp_path, plain, switch):
    switched = short_run(tmp_path, "switched", switch)
    assert plain["final_return"] >= 150, plain  # random play scores ~22
    assert switched["final_return"] >= 150, switched
    assert switched["eval_return"] >= 150, switched
    assert switched["global_step"] == plain["global_step"]


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_GPU)
@pytest.mark.parametrize("switch", ["compile=true", "amp=bf16", "cuda_graphs=true"])
def test_a_switch_trains_cartpole_on_cuda(tmp_path, switch):
    switched = short_run(tmp_path, "cuda", "device=cuda", switch)
    assert switched["final_return"] >= 150, switched


def metrics_and_parameters(run_dir: Path) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """The run's metrics rows (without wall-clock figures) and its final parameters."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    clock = {"time", "charts/SPS"}
    model = torch.load(run_dir / "checkpoint.pt", weights_only=True)["model"]
    return [{k: v for k, v in row.items() if k not in clock} for row in rows], model


@pytest.mark.parametrize("recipe", [[], ["num_envs=5"]])
def test_envpool_async_trains_exactly_as_envpool(tmp_path, recipe):
    """Pools stepped in turn change when envs step, not what they do: on CartPole every metric
    and every parameter equals the one-pool run's (8 envs in pools of 4; 5 in pools of 2 and 3).
    The transitions match with truncations too (test_envs). Runs agree only to rounding where a
    pass over a pool's envs rounds differently from one over all of them (~1e-9) and that
    matters: truncated states valued per pool, continuous actions in MuJoCo's dynamics."""
    runs = {}
    for backend in ("envpool", "envpool_async"):
        overrides = ["logger=none", "total_timesteps=2560", "eval_episodes=2", *recipe]
        settings = validate(compose_config(f"env/backend={backend}", *overrides))
        figures = train(settings, tmp_path / backend, {}, backend)
        runs[backend] = (figures, *metrics_and_parameters(tmp_path / backend))
    (one, rows, model), (pooled, pooled_rows, pooled_model) = runs.values()
    assert len(rows) > 10 and pooled_rows == rows  # the updates and the final evaluation
    assert pooled_model.keys() == model.keys()
    assert all(torch.equal(pooled_model[k], model[k]) for k in model)
    assert pooled["eval_returns"] == one["eval_returns"]


@pytest.mark.parametrize(
    ("switch", "refusal"),
    [
        ("compile=true", r"compile=true: a population's members.*drop compile=true"),
        ("cuda_graphs=true", r"cuda_graphs=true: a population's members.*drop cuda_graphs=true"),
        (
            "env/backend=envpool_async",
            r"a population steps all its members' envs.*use env/backend=envpool",
        ),
    ],
)
def test_a_switch_populations_cannot_take_is_refused_for_them_naming_the_way_out(
    switch, refusal, monkeypatch
):
    """Refused for `population=2` by validation and for a packed sweep by packing."""
    with pytest.raises(ConfigError, match=refusal):
        validate(compose_config("population=2", switch, "logger=none"))
    # what is checked is packing: cuda_graphs' need of a GPU (test_bad_configs) is set aside
    monkeypatch.setattr(ppo_lab.config, "_check_cuda_graphs", lambda device: [])
    packed = [validate(compose_config(switch, f"seed={s}")) for s in (1, 2)]
    with pytest.raises(ConfigError, match=refusal):
        check_packable(packed)


def test_envpool_async_is_refused_for_more_groups_than_envs():
    with pytest.raises(ConfigError, match=r"async_groups=9 with num_envs=8.*at most 8"):
        validate(compose_config("env/backend=envpool_async", "env.backend.async_groups=9"))


def test_an_unknown_precision_is_refused_naming_the_valid_ones():
    with pytest.raises(ConfigError, match=r"amp.*'none' or 'bf16'"):
        validate(compose_config("amp=fp16"))
