"""One flat parameter per run (ppo_lab/flat_params.py) stepped by ppo_lab's Adam (ppo_lab/optim.py)
trains exactly as torch's per-parameter optimizer and clip_grad_norm_ do, and checkpoints in
their format."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

from ppo_lab.flat_params import (
    clip_grad_norm,
    flat_state,
    flatten_parameters,
    per_parameter_state,
    zero_gradients,
)
from ppo_lab.networks import mlp, nature_cnn
from ppo_lab.optim import FlatAdam, adam, adamw

from helpers import REPO

OBS = gym.spaces.Box(-1.0, 1.0, (5,), np.float32)
IMAGES = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)


def loss_of(agent, seed: int, images: bool = False) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    if images:
        obs = torch.randint(0, 256, (32, 4, 84, 84), generator=gen, dtype=torch.uint8)
    else:
        obs = torch.randn(32, 5, generator=gen)
    logp, entropy, values = agent.evaluate(obs, torch.randint(0, 3, (32,), generator=gen))
    return -(logp * torch.randn(32, generator=gen)).mean() + values.pow(2).mean() - entropy.mean()


TORCH_OPTIMIZERS = {adam: torch.optim.Adam, adamw: torch.optim.AdamW}


@pytest.mark.parametrize("make_optimizer", [adam, adamw])
@pytest.mark.parametrize("network", ["mlp", "nature_cnn"])
def test_a_flat_parameter_steps_as_the_per_parameter_optimizer_does(make_optimizer, network):
    """The reference is torch's own optimizer over the parameters one by one. The CNN's
    convolution weights are channels-last: their moments are saved element for element with the
    weights, whatever the memory layout."""
    torch.manual_seed(0)
    images = network == "nature_cnn"
    # the CNN's 1.7M gradients: one norm over the flat buffer rounds differently from a norm of
    # per-tensor norms, and the 4 steps carry it on
    rtol, atol = (1e-4, 1e-6) if images else (1e-6, 1e-7)
    if images:
        reference = nature_cnn(IMAGES, gym.spaces.Discrete(3))
    else:
        reference = mlp(OBS, gym.spaces.Discrete(3))
    flat_agent = copy.deepcopy(reference)
    flat_opt = make_optimizer([flatten_parameters(flat_agent)], lr=1e-2)
    # the MLP's 9k parameters are stepped by ppo_lab's Adam, the CNN's 1.7M by torch's fused one
    assert isinstance(flat_opt, FlatAdam) == (network == "mlp")
    keys = ("lr", "betas", "eps", "weight_decay", "fused")
    hyper = {k: flat_opt.param_groups[0][k] for k in keys}
    ref_opt = TORCH_OPTIMIZERS[make_optimizer](reference.parameters(), **hyper)
    for step in range(4):
        ref_opt.zero_grad()
        loss_of(reference, step, images).backward()
        ref_norm = torch.nn.utils.clip_grad_norm_(reference.parameters(), 0.5)
        ref_opt.step()
        zero_gradients(flat_opt.param_groups[0]["params"])
        loss_of(flat_agent, step, images).backward()
        norm = clip_grad_norm(flat_opt.param_groups[0]["params"], 0.5)
        flat_opt.step()
        torch.testing.assert_close(norm, ref_norm, rtol=rtol, atol=atol)
    for got, want in zip(flat_agent.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(got, want, rtol=rtol, atol=atol)
    # the checkpoint holds torch's per-parameter format, and loads back
    saved = per_parameter_state(flat_opt.state_dict(), flat_agent)
    want_state = ref_opt.state_dict()
    assert saved["param_groups"] == want_state["param_groups"]
    for i, moments in want_state["state"].items():
        for key, value in moments.items():
            torch.testing.assert_close(saved["state"][i][key], value, rtol=rtol, atol=atol / 10)
    resumed_agent = copy.deepcopy(reference)
    resumed_opt = make_optimizer([flatten_parameters(resumed_agent)], lr=1e-3)
    resumed_opt.load_state_dict(flat_state(ref_opt.state_dict(), resumed_agent))
    assert resumed_opt.param_groups[0]["lr"] == 1e-2  # the saved learning rate, as torch's
    for key, value in flat_opt.state_dict()["state"][0].items():
        torch.testing.assert_close(resumed_opt.state_dict()["state"][0][key], value)
    # and torch's optimizer resumes from ppo_lab's checkpoint
    torch_resumed = TORCH_OPTIMIZERS[make_optimizer](copy.deepcopy(reference).parameters(), lr=1e-3)
    torch_resumed.load_state_dict(saved)
    assert torch_resumed.state_dict()["param_groups"] == want_state["param_groups"]


def test_the_views_keep_values_and_strides_and_share_one_storage():
    torch.manual_seed(0)
    agent = nature_cnn(gym.spaces.Box(0, 255, (4, 84, 84), np.uint8), gym.spaces.Discrete(4))
    before = {name: (p.detach().clone(), p.stride()) for name, p in agent.named_parameters()}
    flat = flatten_parameters(agent)
    for name, p in agent.named_parameters():
        torch.testing.assert_close(p.detach(), before[name][0], rtol=0, atol=0)
        assert p.stride() == before[name][1]  # channels-last conv weights stay channels-last
        assert p.untyped_storage().data_ptr() == flat.untyped_storage().data_ptr()
        assert p.grad.untyped_storage().data_ptr() == flat.grad.untyped_storage().data_ptr()
    with torch.no_grad():
        flat.add_(1.0)  # what the optimizer's step does
    first = next(agent.parameters())
    torch.testing.assert_close(first.detach(), next(iter(before.values()))[0] + 1.0)


def test_a_nonfinite_gradient_is_reported_and_left_unscaled():
    grads = [torch.tensor([3.0, 4.0]), torch.tensor([float("nan")])]
    params = [torch.zeros(2, requires_grad=True), torch.zeros(1, requires_grad=True)]
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()
    assert clip_grad_norm(params, 1.0) is None
    torch.testing.assert_close(params[0].grad, grads[0])
    params[1].grad = torch.tensor([0.0])
    norm = clip_grad_norm(params, 1.0)
    assert float(norm) == pytest.approx(5.0)  # sqrt(3^2 + 4^2), before clipping
    torch.testing.assert_close(params[0].grad, torch.tensor([0.6, 0.8]), rtol=1e-5, atol=1e-6)
    assert float(clip_grad_norm(params, float("inf"))) == pytest.approx(1.0, rel=1e-5)


def test_a_run_trains_without_importing_torch_dynamo(tmp_path):
    """torch.optim's optimizers import torch._dynamo on first use (1.3 s); ppo_lab's Adam, which
    steps small networks, does not, so an MLP run that does not compile never pays for it."""
    script = (
        "import json, sys; from pathlib import Path; from helpers import compose_config; "
        "from ppo_lab.config import validate; from ppo_lab.train import train; "
        "settings = validate(compose_config('logger=none', 'total_timesteps=512', "
        "'eval_episodes=1', 'optim=adamw')); "
        f"figures = train(settings, Path({str(tmp_path)!r}), {{}}, 'run'); "
        "print(json.dumps([figures['global_step'], 'torch._dynamo' in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO / "tests", capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == [512, False]
