"""How far `amp=bf16` moves a minibatch gradient, against how far the choice of minibatch moves it.

On one rollout of Breakout (the Atari recipe's 8 envs x 128 steps, random actions, envpool), the
PPO loss of the Nature CNN is differentiated on each minibatch of one epoch in float32 and in
bfloat16 (the encoder under `torch.autocast`, as `amp=bf16` runs it). Printed:

  - bf16 vs float32, the same minibatch: cosine of the two gradients and the relative
    difference |g_bf16 - g_fp32| / |g_fp32|; the losses' relative difference
  - float32, another minibatch: the same two figures between each minibatch's gradient and the
    next one's (the noise SGD already lives with)

If the first is small against the second, bfloat16's rounding is buried in sampling noise. It
is evidence about one step, not a learning curve.

    python benchmarks/amp_fidelity.py [--seed 0] [--minibatches 4] [--checkpoint run/checkpoint.pt]

`--checkpoint` takes the network of a run's checkpoint (a trained policy) instead of a fresh one.
"""

from __future__ import annotations

import argparse

import envpool
import numpy as np
import torch
from common import compose_config, random_actions
from torch import Tensor

from ppo_lab.advantages import mc
from ppo_lab.checkpoint import load_checkpoint
from ppo_lab.components import build
from ppo_lab.flat_params import flatten_parameters, zero_gradients
from ppo_lab.networks import ActorCritic
from ppo_lab.train import Minibatch, minibatch_loss


def rollout(cfg, seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(observations [T*N, 4, 84, 84] uint8, actions [T*N], rewards [T, N], episode ends
    (terminated, done) [2, T, N])."""
    envs = envpool.make_gymnasium(
        cfg.env.id, num_envs=cfg.num_envs, seed=seed, num_threads=2, **cfg.env.kwargs
    )
    obs, _ = envs.reset()
    steps, n = cfg.num_steps, cfg.num_envs
    actions = random_actions(envs.action_space, steps, n)
    observations, rewards, ends = [], [], []
    for a in actions:
        observations.append(obs)
        obs, reward, terminated, truncated, _ = envs.step(a)
        rewards.append(reward)
        ends.append((terminated, terminated | truncated))
    envs.close()
    frames = np.stack(observations).reshape(steps * n, *obs.shape[1:])
    return (
        torch.from_numpy(frames),
        torch.from_numpy(actions.reshape(-1)),
        torch.from_numpy(np.stack(rewards)).float(),
        torch.from_numpy(np.stack(ends, axis=1)),
    )


def gradient(agent: ActorCritic, flat: Tensor, loss, batch: Minibatch, targets: Tensor):
    zero_gradients([flat])
    total, _, _ = minibatch_loss(agent, loss, batch, targets, True, None)
    total.backward()
    return total.item(), flat.grad.clone()


def compare(a: Tensor, b: Tensor) -> tuple[float, float]:
    """(cosine of a and b, |a - b| / |b|)."""
    cosine = torch.nn.functional.cosine_similarity(a, b, dim=0).item()
    return cosine, ((a - b).norm() / b.norm()).item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minibatches", type=int, default=4)
    parser.add_argument("--checkpoint", default=None, help="a run's checkpoint.pt (env=atari)")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    cfg = compose_config("env=atari")
    obs, actions, rewards, (terminated, done) = rollout(cfg, args.seed)
    no_bootstrap = torch.zeros_like(rewards)  # returns to the episode's (or rollout's) end
    _, returns = mc(rewards, no_bootstrap, no_bootstrap, terminated, done, cfg.gamma)
    returns = returns.view(-1)
    envs = build(cfg.env, num_envs=1)
    agent: ActorCritic = build(
        cfg.network,
        observation_space=envs.single_observation_space,
        action_space=envs.single_action_space,
    )
    envs.close()
    if args.checkpoint:
        agent.load_state_dict(load_checkpoint(args.checkpoint)["model"])
    flat = flatten_parameters(agent)
    loss = build(cfg.loss)
    with torch.no_grad():
        logp_old, _, values = agent.evaluate(obs, actions)
    advantages = returns - values
    order = torch.randperm(len(obs))
    size = len(obs) // args.minibatches
    fp32, bf16 = [], []
    for k in range(args.minibatches):
        rows = order[k * size : (k + 1) * size]
        batch = Minibatch(obs[rows], actions[rows], logp_old[rows], advantages[rows], values[rows])
        agent.autocast_dtype = None
        fp32.append(gradient(agent, flat, loss, batch, returns[rows]))
        agent.autocast_dtype = torch.bfloat16
        bf16.append(gradient(agent, flat, loss, batch, returns[rows]))
    print(f"Breakout, {len(obs)} random-action frames, {args.minibatches} minibatches of {size}")
    print(f"{'minibatch':10s} {'bf16 vs fp32: cosine':>21s} {'rel. diff':>10s} {'loss diff':>10s}"
          f"   {'next minibatch: cosine':>23s} {'rel. diff':>10s}")  # fmt: skip
    for k in range(args.minibatches):
        (loss32, g32), (loss16, g16) = fp32[k], bf16[k]
        cosine, diff = compare(g16, g32)
        other_cosine, other_diff = compare(fp32[(k + 1) % args.minibatches][1], g32)
        loss_diff = abs(loss16 - loss32) / abs(loss32)
        print(f"{k:<10d} {cosine:>21.4f} {diff:>10.4f} {loss_diff:>10.2e}"
              f"   {other_cosine:>23.4f} {other_diff:>10.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
