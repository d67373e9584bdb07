"""One minibatch step of the default CartPole run, by part, in one process: torch's per-parameter
fused Adam and clip_grad_norm_, one flat parameter (ppo_lab/flat_params.py) stepped by torch's
fused Adam, and the flat parameter stepped by ppo_lab's Adam (ppo_lab/optim.py, what a run
uses), alternated; with `--compile`, also the last with the minibatch loss `torch.compile`d, as
`compile=true` runs it (its first call, which compiles, is in the warm-up).

    python benchmarks/minibatch_step.py [--rounds 5] [--steps 1000] [--batch 256] [--compile]

Prints, per round and way, the microseconds of the forward pass with the loss, zeroing the
gradients, backward, clipping and the Adam step (one torch thread, as a CartPole run uses).
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
from common import compose_config

from ppo_lab.components import build
from ppo_lab.flat_params import clip_grad_norm, flatten_parameters, zero_gradients
from ppo_lab.optim import Optimizer
from ppo_lab.train import Minibatch, minibatch_loss

PARTS = ("forward+loss", "zero", "backward", "clip", "step")


def torch_way(agent: torch.nn.Module, optimizer: torch.optim.Optimizer) -> list[Callable]:
    params = list(agent.parameters())
    return [
        lambda: optimizer.zero_grad(set_to_none=True),
        lambda: torch.nn.utils.clip_grad_norm_(params, 0.5, error_if_nonfinite=True),
        optimizer.step,
    ]


def flat_way(optimizer: Optimizer) -> list[Callable]:
    params = optimizer.param_groups[0]["params"]
    return [lambda: zero_gradients(params), lambda: clip_grad_norm(params, 0.5), optimizer.step]


Way = tuple[list[Callable], Callable]  # ([zero, clip, step], the minibatch loss function)


def time_steps(agent, loss, batch, targets, way: Way, steps: int) -> dict[str, float]:
    (zero, clip, step), minibatch_loss = way
    seconds = dict.fromkeys(PARTS, 0.0)
    for _ in range(steps):
        t0 = time.perf_counter()
        total, _, _ = minibatch_loss(agent, loss, batch, targets, False, None)
        t1 = time.perf_counter()
        zero()
        t2 = time.perf_counter()
        total.backward()
        t3 = time.perf_counter()
        clip()
        t4 = time.perf_counter()
        step()
        t5 = time.perf_counter()
        for part, dt in zip(PARTS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
            seconds[part] += dt
    return {part: s / steps * 1e6 for part, s in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--compile", action="store_true", help="also the compiled minibatch loss")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = compose_config()
    obs_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    agent = build(cfg.network, observation_space=obs_space, action_space=gym.spaces.Discrete(2))
    flat_agent, torch_flat_agent = copy.deepcopy(agent), copy.deepcopy(agent)
    loss = build(cfg.loss)
    hyper = {"lr": cfg.optim.lr, "eps": cfg.optim.eps, "betas": tuple(cfg.optim.betas)}
    torch_flat = [flatten_parameters(torch_flat_agent)]
    ways = {
        "torch optimizer + clip_grad_norm_": (
            agent,
            (torch_way(agent, torch.optim.Adam(agent.parameters(), **hyper, fused=True)),
             minibatch_loss),
        ),
        "flat parameter, torch's fused Adam": (
            torch_flat_agent,
            (flat_way(torch.optim.Adam(torch_flat, **hyper, fused=True)), minibatch_loss),
        ),
        "flat parameter, ppo_lab's Adam": (
            flat_agent,
            (flat_way(build(cfg.optim, params=[flatten_parameters(flat_agent)])), minibatch_loss),
        ),
    }  # fmt: skip
    if args.compile:
        compiled_agent = copy.deepcopy(agent)
        optimizer = build(cfg.optim, params=[flatten_parameters(compiled_agent)])
        ways["flat parameter, ppo_lab's Adam, compiled loss"] = (
            compiled_agent,
            (flat_way(optimizer), torch.compile(minibatch_loss)),
        )
    n = args.batch
    batch = Minibatch(
        torch.randn(n, 4), torch.randint(0, 2, (n,)), torch.full((n,), -0.69), torch.randn(n),
        torch.randn(n),
    )  # fmt: skip
    targets = torch.randn(n)
    print(f"{'round':6s} {'way':46s} " + " ".join(f"{p:>13s}" for p in PARTS) + "   total us")
    for r in range(args.rounds):
        for name, (net, way) in ways.items():
            time_steps(net, loss, batch, targets, way, 50)  # warm-up
            us = time_steps(net, loss, batch, targets, way, args.steps)
            parts = " ".join(f"{us[p]:>13.0f}" for p in PARTS)
            print(f"{r + 1:<6d} {name:46s} {parts}   {sum(us.values()):>8.0f}")


if __name__ == "__main__":
    main()
