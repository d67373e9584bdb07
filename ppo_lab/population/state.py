"""The state of a population: M members' networks, optimizer, statistics and coefficients."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ppo_lab.allocator import keep_freed_memory
from ppo_lab.components import ConfigError, build
from ppo_lab.envs import VectorEnv
from ppo_lab.losses import PPOLoss
from ppo_lab.normalization import Normalizers
from ppo_lab.population.agents import MemberAgents
from ppo_lab.population.coefficients import merge
from ppo_lab.population.members import Member
from ppo_lab.population.normalization import MemberNormalizers
from ppo_lab.population.optim import MemberAdam
from ppo_lab.threads import intra_op_threads
from ppo_lab.train import annealed_lr, build_agent


class Population:
    """The state of M members trained together (built by `train_population`)."""

    def __init__(self, members: list[Member], device: torch.device):
        self.members = members
        self.runs = [m.settings.run for m in members]
        run = self.runs[0]
        self.num_members, self.device = len(members), device
        self.envs_per_member = run.num_envs
        self.losses: list[PPOLoss] = []
        agents, generators, normalizers = [], [], []
        self.envs: VectorEnv = build(
            members[0].settings.cfg.env, num_envs=self.num_members * run.num_envs
        )
        self.obs_space = self.envs.single_observation_space
        self.action_space = self.envs.single_action_space
        obs_shape = tuple(self.obs_space.shape or ())
        threads = intra_op_threads(run.torch_threads, image_observations=len(obs_shape) == 3)
        if threads is not None:
            torch.set_num_threads(threads)
        keep_freed_memory()  # a CNN's activations reuse their pages
        try:
            for member in members:
                cfg, seed = member.settings.cfg, member.settings.run.seed
                torch.manual_seed(seed)
                np.random.seed(seed)
                self.losses.append(build(cfg.loss))
                norm: Normalizers = build(
                    cfg.normalization,
                    obs_shape=obs_shape,
                    num_envs=run.num_envs,
                    gamma=member.settings.run.gamma,
                    device=device,
                )
                normalizers.append(norm)
                agent = build_agent(
                    member.settings, member.choices, norm, self.obs_space, self.action_space
                )
                agents.append(agent.to(device))
                generators.append(member_generator(seed, device))
            self.loss = merge(self.losses, "loss")
            self.estimator = merge([build(m.settings.cfg.advantage) for m in members], "advantage")
        except ConfigError:
            self.envs.close()
            raise
        self.agents = MemberAgents(agents, generators)
        self.gamma = self.per_member([r.gamma for r in self.runs])
        # the reward scaler's return accumulates in float64, with each member's gamma as given
        gamma64 = self.per_env(self.gamma.double().new_tensor([r.gamma for r in self.runs]))
        self.norm = MemberNormalizers(normalizers, run.num_envs, gamma64)
        self.optimizer = member_optimizer(members, self.agents, device)
        self.max_grad_norm = self.per_member(
            [r.max_grad_norm if r.max_grad_norm is not None else float("inf") for r in self.runs]
        )
        self.kl_beta = [loss.initial_kl_beta for loss in self.losses]
        self.alive = torch.ones(self.num_members, dtype=torch.bool, device=device)
        self.failures: dict[int, str] = {}  # member -> why it stopped
        self.optimizer_groups: dict[int, list[dict]] = {}  # member -> torch's param_groups

    def learning_rates(self, update_index: int) -> list[float]:
        """Each member's learning rate at an update, as its separate run computes it."""
        lrs = [float(m.settings.cfg.optim.lr) for m in self.members]
        if not self.runs[0].anneal_lr:
            return lrs
        return [annealed_lr(lr, update_index, self.runs[0].num_updates) for lr in lrs]

    def per_member(self, values: list[float]) -> Tensor:
        return torch.tensor(values, dtype=torch.float32, device=self.device)

    def per_env(self, values: Tensor) -> Tensor | float:
        """[M] -> [M * N], or a plain float when every member has the same value."""
        if bool((values == values[0]).all()):
            return float(values[0])
        return values.repeat_interleave(self.envs_per_member)


def member_generator(seed: int, device: torch.device) -> torch.Generator:
    """The member's own generator, where its separate run's global one is after building the
    network (CPU), or seeded as `torch.manual_seed` seeds the CUDA one (the network is built on
    the CPU, so that one is untouched)."""
    generator = torch.Generator(device=device)
    if device.type == "cpu":
        generator.set_state(torch.get_rng_state())
    else:
        generator.manual_seed(seed)
    return generator


def member_optimizer(
    members: list[Member], agents: MemberAgents, device: torch.device
) -> MemberAdam:
    """`MemberAdam` with each member's `optim` entry (adam or adamw) as its hyperparameters."""
    entries = []
    for member in members:
        node = member.settings.cfg.optim
        target = str(node.get("_target_"))
        if target not in ("ppo_lab.optim.adam", "ppo_lab.optim.adamw"):
            raise ConfigError(
                [f"optim._target_={target}: a population steps optim=adam or optim=adamw"]
            )
        entries.append(node)

    def values(key: str, default: float, index: int | None = None) -> Tensor:
        out = []
        for node in entries:
            value = node.get(key, default)
            out.append(float(value[index] if index is not None else value))
        return torch.tensor(out, dtype=torch.float32, device=device)

    return MemberAdam(
        agents.flat,
        list(agents.shapes.values()),
        lr=values("lr", 2.5e-4),
        betas=(values("betas", 0.9, 0), values("betas", 0.999, 1)),
        eps=values("eps", 1e-5),
        weight_decay=values("weight_decay", 0.0),
    )
