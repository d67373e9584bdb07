"""Population training (ppo_lab/population): M runs in one process, batched with vmap.

Each member is its own run to everything outside: with the gymnasium backend on the CPU it
reproduces the separate run of its settings (`ppo_lab.train.train`) up to float rounding, writes
the same files (metrics.jsonl, checkpoint.pt), fails alone, resumes, and its checkpoint loads as
a single run's policy. Tolerances: after 2-4 small updates the members' parameters differ from
their separate runs by ~1e-7 (float rounding in batched matrix products); chaotic divergence grows
later, so every comparison stops after a few updates.
"""

from __future__ import annotations

import json
import math
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.wrappers import TimeLimit

import ppo_lab.population.update as population_update
from ppo_lab.checkpoint import load_checkpoint
from ppo_lab.components import ConfigError
from ppo_lab.config import Settings, validate
from ppo_lab.population.packing import check_packable
from ppo_lab.population.trainer import Member, train_population
from ppo_lab.signals import GracefulStop, StopRequested
from ppo_lab.train import train

from helpers import compose_config, vector_env

RUN = ["logger=none", "eval_episodes=0", "checkpoint_interval=0", "device=cpu"]
# 4 envs x 64 steps = 256 per update; 4 epochs of 4 minibatches: every member shuffles its own
CARTPOLE = [*RUN, "num_envs=4", "num_steps=64", "update_epochs=4", "num_minibatches=4"]
BATCH = 4 * 64
PARAMS_ATOL = 1e-5  # observed <= 6e-7 after 2-4 updates
THIS_MODULE = "test_population"  # the seeded NaN env below, allowed as a user env


class SeededNanCartPole(CartPoleEnv):
    """CartPole-v1 whose `nan_at`-th step returns a NaN reward, only in the env that was reset
    with seed `nan_seed`: in a population, the envs of one member only (member k's envs are
    seeded seed_k .. seed_k + num_envs - 1, as its separate run seeds them)."""

    def __init__(self, nan_seed: int = -1, nan_at: int = 100, **kwargs: Any):
        super().__init__(**kwargs)
        self.nan_seed, self.nan_at = nan_seed, nan_at
        self.steps, self.armed = 0, False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        if seed is not None:
            self.armed = seed == self.nan_seed
        return super().reset(seed=seed, options=options)

    def step(self, action: Any) -> Any:
        self.steps += 1
        obs, reward, terminated, truncated, info = super().step(action)
        if self.armed and self.steps == self.nan_at:
            reward = float("nan")
        return obs, reward, terminated, truncated, info


def seeded_nan_cartpole(**kwargs: Any) -> TimeLimit:
    return TimeLimit(SeededNanCartPole(**kwargs), max_episode_steps=500)


class StopAfter(GracefulStop):
    """A stop signal (SIGTERM) that arrives during update `updates`: the trainers read
    `requested` once after each update."""

    def __init__(self, updates: int):
        super().__init__()
        self.updates, self.checks = updates, 0

    @property
    def requested(self) -> bool:
        self.checks += 1
        if self.checks >= self.updates:
            self.signum = signal.SIGTERM
        return self.signum is not None


def settings(*overrides: str) -> Settings:
    return validate(compose_config(*overrides), allow=(THIS_MODULE,))


def population(
    root: Path, variants: list[list[str]], stop: GracefulStop | None = None
) -> list[Member]:
    """Members with overrides `variants[k]`, in root/member_<k>, trained together."""
    members = [
        Member(settings(*overrides), root / f"member_{k}", {}, f"member-{k}")
        for k, overrides in enumerate(variants)
    ]
    train_population(members, stop=stop)
    return members


def separate(run_dir: Path, overrides: list[str], stop: GracefulStop | None = None) -> dict:
    return train(settings(*overrides), run_dir, {}, run_dir.name, stop=stop)


def update_rows(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "charts/SPS" in r]


def assert_same_parameters(a: Path, b: Path, atol: float = PARAMS_ATOL) -> None:
    """The checkpoints' networks equal within atol, and the optimizers took as many steps."""
    ca, cb = load_checkpoint(a / "checkpoint.pt"), load_checkpoint(b / "checkpoint.pt")
    assert (ca["global_step"], ca["update"]) == (cb["global_step"], cb["update"])
    assert ca["model"].keys() == cb["model"].keys()
    for name in cb["model"]:
        torch.testing.assert_close(ca["model"][name], cb["model"][name], rtol=0, atol=atol)
    sa, sb = ca["optimizer"]["state"], cb["optimizer"]["state"]
    assert sa.keys() == sb.keys()
    assert all(float(sa[i]["step"]) == float(sb[i]["step"]) for i in sb)


DIAGNOSTICS = ("losses/policy_loss", "losses/value_loss", "losses/entropy", "losses/approx_kl")


def assert_same_history(a: Path, b: Path, return_rel: float = 0.0) -> None:
    """One row per update at the same steps, with the same episodes (count and mean return, to
    `return_rel` for continuous actions) and the same loss diagnostics to float rounding."""
    rows_a, rows_b = update_rows(a), update_rows(b)
    assert [r["global_step"] for r in rows_a] == [r["global_step"] for r in rows_b]
    for ra, rb in zip(rows_a, rows_b, strict=True):
        step = ra["global_step"]
        assert ra.get("charts/episodes") == rb.get("charts/episodes"), step
        if return_rel == 0.0:
            assert ra.get("charts/episodic_return") == rb.get("charts/episodic_return"), step
        elif "charts/episodic_return" in rb:
            assert ra["charts/episodic_return"] == pytest.approx(
                rb["charts/episodic_return"], rel=return_rel
            ), step
        for key in DIAGNOSTICS:
            assert ra[key] == pytest.approx(rb[key], rel=1e-4, abs=1e-6), (step, key)
        for key in ("losses/epochs", "losses/early_stopped", "losses/kl_beta"):
            assert (key in ra) == (key in rb), (step, key)
            if key in rb:
                assert ra[key] == pytest.approx(rb[key], rel=1e-5), (step, key)


def flat(state: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in state.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.mark.slow
def test_a_population_of_four_seeds_reproduces_four_separate_runs(tmp_path):
    run = [*CARTPOLE, "num_steps=128", f"total_timesteps={2 * 4 * 128}"]  # 2 updates
    seeds = [1, 2, 3, 4]
    members = population(tmp_path / "pop", [[*run, f"seed={s}"] for s in seeds])

    for seed, member in zip(seeds, members, strict=True):
        alone = tmp_path / f"seed_{seed}"
        figures = separate(alone, [*run, f"seed={seed}"])
        assert "failure" not in member.figures
        assert_same_parameters(member.run_dir, alone)
        assert_same_history(member.run_dir, alone)
        assert len(update_rows(alone)) == 2
        assert member.figures["global_step"] == figures["global_step"] == 2 * 4 * 128
        assert member.figures["final_return"] == figures["final_return"]
        assert member.figures["solved"] == figures["solved"]


@pytest.mark.parametrize("value_target", [False, True], ids=["obs_reward", "value_target"])
def test_continuous_members_keep_their_own_running_statistics(tmp_path, value_target):
    """Pendulum (Box actions, a 200-step time limit: every env truncates and bootstraps in
    update 2) with observation and reward normalization: each member's statistics (and its
    reward scaler's discount) are its separate run's."""
    run = [
        *RUN,
        "env=gymnasium",
        "env.id=Pendulum-v1",
        "normalization=obs_reward",
        f"normalization.value_target={str(value_target).lower()}",
        "num_envs=4",
        "num_steps=128",
        f"total_timesteps={2 * 4 * 128}",
    ]
    variants = [[*run, "seed=1"], [*run, "seed=2", "gamma=0.95"]]
    members = population(tmp_path / "pop", variants)

    for k, (member, overrides) in enumerate(zip(members, variants, strict=True)):
        alone = tmp_path / f"alone_{k}"
        separate(alone, overrides)
        assert_same_parameters(member.run_dir, alone)
        assert_same_history(member.run_dir, alone, return_rel=1e-5)
        mine = flat(load_checkpoint(member.run_dir / "checkpoint.pt")["normalizers"])
        theirs = flat(load_checkpoint(alone / "checkpoint.pt")["normalizers"])
        assert mine.keys() == theirs.keys()
        assert {"obs.mean", "reward.rms.m2", "reward.returns"} <= theirs.keys()
        assert ("value_target.mean" in theirs) == value_target
        for key, expected in theirs.items():
            if isinstance(expected, torch.Tensor):
                assert mine[key].shape == expected.shape, key
                torch.testing.assert_close(mine[key], expected, rtol=1e-5, atol=1e-6, msg=key)
            elif isinstance(expected, float):
                assert mine[key] == pytest.approx(expected, rel=1e-6), key
            else:
                assert mine[key] == expected, key


def test_members_anneal_their_own_learning_rates(tmp_path):
    updates = 4
    run = [*CARTPOLE, f"total_timesteps={updates * BATCH}", "seed=3"]  # the same seed
    lrs = [1e-3, 1e-4]
    variants = [[*run, f"optim.lr={lr}"] for lr in lrs]
    members = population(tmp_path / "pop", variants)

    for k, (lr, member) in enumerate(zip(lrs, members, strict=True)):
        logged = [r["charts/learning_rate"] for r in update_rows(member.run_dir)]
        expected = [lr * (1 - (i - 1) / updates) for i in range(1, updates + 1)]
        assert logged == pytest.approx(expected, rel=1e-6)
        checkpoint = load_checkpoint(member.run_dir / "checkpoint.pt")
        group_lrs = [g["lr"] for g in checkpoint["optimizer"]["param_groups"]]
        assert group_lrs == pytest.approx([expected[-1]] * len(group_lrs), rel=1e-6)
        alone = tmp_path / f"alone_{k}"
        separate(alone, variants[k])
        assert_same_parameters(member.run_dir, alone)
        assert_same_history(member.run_dir, alone)
    first, second = (update_rows(m.run_dir) for m in members)
    assert first[0]["charts/episodic_return"] == second[0]["charts/episodic_return"]  # one seed
    assert first[0]["losses/approx_kl"] != second[0]["losses/approx_kl"]  # two step sizes


def test_members_differing_in_every_run_level_coefficient_reproduce_their_runs(tmp_path):
    """gamma, max_grad_norm (null: no clipping), early_stop_kl (one member stops its epochs
    early), and numbers of loss, advantage and optim, all at once."""
    run = [*CARTPOLE, f"total_timesteps={2 * BATCH}"]
    variants = [
        [*run, "seed=1"],
        [
            *run,
            "seed=1",
            "gamma=0.9",
            "max_grad_norm=null",
            "early_stop_kl=0.002",
            "loss.policy.clip_eps=0.1",
            "loss.ent_coef=0.05",
            "advantage.lam=0.8",
            "optim.lr=3e-3",
        ],
        [
            *run,
            "seed=2",
            "gamma=0.995",
            "max_grad_norm=0.1",
            "loss.vf_coef=1.0",
            "optim.eps=1e-8",
            "optim.betas=[0.8,0.99]",
        ],
    ]
    members = population(tmp_path / "pop", variants)

    for k, member in enumerate(members):
        alone = tmp_path / f"alone_{k}"
        separate(alone, variants[k])
        assert_same_parameters(member.run_dir, alone)
        assert_same_history(member.run_dir, alone)
    stopped = [r["losses/early_stopped"] for r in update_rows(members[1].run_dir)]
    assert 1.0 in stopped, "early_stop_kl=0.002 stops an update's epochs early"
    assert all(r["losses/early_stopped"] == 0.0 for r in update_rows(members[0].run_dir))


COMPONENT_COEFFICIENTS = {
    "kl_penalty": (["loss=kl_penalty"], ["loss.kl_coef.initial=0.5", "loss.kl_coef.target=0.02"]),
    "vtrace": (["advantage=vtrace"], ["advantage.rho_bar=0.5", "advantage.c_bar=0.8"]),
    "value_clipped": (["loss/value=clipped"], ["loss.value.clip_eps=0.5"]),
    "adamw": (["optim=adamw"], ["optim.weight_decay=0.1"]),
    "dual_clip": (["loss=dual_clip"], ["loss.policy.dual_clip=5.0"]),
    "huber": (["loss/value=huber"], ["loss.value.delta=2.0"]),
    "nstep": (["advantage=nstep"], ["advantage.n=10"]),
}


@pytest.mark.parametrize("component", list(COMPONENT_COEFFICIENTS))
def test_a_number_inside_a_component_either_trains_per_member_or_is_refused(tmp_path, component):
    """The packing rule lets every number of loss/advantage/optim differ between members: each
    member then reproduces its run, or the population refuses the config before training (a
    ConfigError naming the key), never a crash in the middle of an update."""
    entry, numbers = COMPONENT_COEFFICIENTS[component]
    run = [*RUN, "num_envs=4", "num_steps=32", "update_epochs=2", "num_minibatches=2", *entry]
    run.append(f"total_timesteps={2 * 4 * 32}")
    variants = [[*run, "seed=1"], [*run, "seed=2", *numbers]]
    try:
        members = population(tmp_path / "pop", variants)
    except ConfigError as err:
        keys = [n.split("=")[0] for n in numbers]
        assert any(key in str(err) for key in keys), str(err)
        assert not list((tmp_path / "pop").glob("*/metrics.jsonl")), "refused before training"
        return
    for k, member in enumerate(members):
        alone = tmp_path / f"alone_{k}"
        separate(alone, variants[k])
        assert_same_parameters(member.run_dir, alone)
        assert_same_history(member.run_dir, alone)


def _nan_gradient_for_member_1_from_update_2(monkeypatch) -> None:
    real = population_update.clip_grad_norms
    calls = []

    def clip(grad: torch.Tensor, max_norms: torch.Tensor) -> torch.Tensor:
        norms = real(grad, max_norms)
        calls.append(1)
        if len(calls) > 4 * 4:  # update 1 is 4 epochs x 4 minibatches
            norms = norms.clone()
            norms[1] = float("nan")
        return norms

    monkeypatch.setattr(population_update, "clip_grad_norms", clip)


@pytest.mark.parametrize("source", ["environment", "gradient"])
def test_a_member_that_goes_non_finite_fails_alone(tmp_path, monkeypatch, source):
    """Member 1 (seed 10: its envs are seeded 10..13) meets a NaN in update 2, from its own
    env's reward or its own gradient; it stops there, and the others finish exactly as their
    separate runs do, their evaluation included (the members' evaluation runs batched, the
    failed member's rows left out)."""
    updates = 4
    run = [*CARTPOLE, f"total_timesteps={updates * BATCH}", "eval_episodes=3"]
    if source == "environment":  # env seed 11 is member 1's; its 100th step is in update 2
        run += [f"env.id={THIS_MODULE}:seeded_nan_cartpole", "+env.kwargs.nan_seed=11"]
    seeds = [1, 10, 20]
    variants = [[*run, f"seed={s}"] for s in seeds]
    if source == "gradient":
        _nan_gradient_for_member_1_from_update_2(monkeypatch)
    members = population(tmp_path / "pop", variants)
    monkeypatch.undo()

    failed = members[1]
    assert "non-finite" in failed.figures.get("failure", "").lower(), failed.figures
    assert ("reward" if source == "environment" else "gradient") in failed.figures["failure"]
    assert [r["global_step"] for r in update_rows(failed.run_dir)] == [BATCH]
    assert failed.figures["global_step"] == BATCH
    for k in (0, 2):
        member = members[k]
        assert "failure" not in member.figures, member.figures
        assert [r["global_step"] for r in update_rows(member.run_dir)] == [
            BATCH * i for i in range(1, updates + 1)
        ]
        assert member.figures["global_step"] == updates * BATCH
        assert member.figures["final_return"] is not None
        assert math.isfinite(member.figures["final_return"])
        alone = tmp_path / f"alone_{k}"
        separate_run = separate(alone, variants[k])  # the NaN env is never armed in these envs
        assert_same_parameters(member.run_dir, alone)
        assert_same_history(member.run_dir, alone)
        assert len(member.figures["eval_returns"]) == 3
        assert member.figures["eval_returns"] == separate_run["eval_returns"]
    assert "eval_returns" not in failed.figures


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("network.hidden_sizes=[32]", "network.hidden_sizes"),
        ("num_envs=8", "num_envs"),
        ("loss/value=huber", "loss.value._target_"),
        ("optim=adamw", "optim._target_"),
        ("anneal_lr=false", "anneal_lr"),
    ],
)
def test_members_that_differ_in_more_than_numbers_are_refused_before_any_env(
    tmp_path, monkeypatch, override, key
):
    run = [*CARTPOLE, f"total_timesteps={4 * BATCH}"]
    members = [
        Member(settings(*run, "seed=1"), tmp_path / "a", {}, "a"),
        Member(settings(*run, "seed=2", override), tmp_path / "b", {}, "b"),
    ]
    with pytest.raises(ConfigError, match="differs between the members") as err:
        check_packable([m.settings for m in members])
    assert any(p.startswith(f"{key}:") for p in err.value.problems), err.value.problems

    def no_env(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("an env was built for members that cannot be one population")

    monkeypatch.setattr("ppo_lab.envs.gymnasium_backend.GymnasiumVectorEnv.__init__", no_env)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        train_population(members)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_members_that_differ_only_in_seeds_and_coefficients_are_packable():
    run = [*CARTPOLE, f"total_timesteps={BATCH}"]
    check_packable(
        [
            settings(*run, "seed=1"),
            settings(*run, "seed=2", "gamma=0.9", "max_grad_norm=null", "early_stop_kl=0.01"),
            settings(*run, "seed=3", "optim.lr=1e-4", "loss.vf_coef=1.0", "advantage.lam=0.9"),
        ]
    )


def test_a_stopped_population_resumes_each_member_as_its_separate_run_would(tmp_path):
    """A stop signal in update 2 checkpoints every member and raises; the rerun in the same
    dirs continues from the checkpoints: one row per update, no duplicates, and each member's
    history and parameters are those of its separate run stopped and resumed the same way."""
    updates = 4
    run = [*CARTPOLE, f"total_timesteps={updates * BATCH}", "checkpoint_interval=1"]
    variants = [[*run, "seed=1"], [*run, "seed=2", "optim.lr=3e-4"]]
    root = tmp_path / "pop"
    interrupted = [
        Member(settings(*v), root / f"member_{k}", {}, "m") for k, v in enumerate(variants)
    ]
    with pytest.raises(StopRequested):
        train_population(interrupted, stop=StopAfter(2))
    for member in interrupted:
        assert member.figures["stopped_by"] == "SIGTERM"
        assert member.figures["global_step"] == 2 * BATCH
        assert load_checkpoint(member.run_dir / "checkpoint.pt")["update"] == 2
        assert [r["global_step"] for r in update_rows(member.run_dir)] == [BATCH, 2 * BATCH]

    members = population(root, variants)

    for k, member in enumerate(members):
        assert member.figures["resumed_from_step"] == 2 * BATCH
        assert "failure" not in member.figures
        assert [r["global_step"] for r in update_rows(member.run_dir)] == [
            BATCH * i for i in range(1, updates + 1)
        ]
        alone = tmp_path / f"alone_{k}"
        with pytest.raises(StopRequested):
            separate(alone, variants[k], stop=StopAfter(2))
        assert separate(alone, variants[k])["resumed_from_step"] == 2 * BATCH
        assert_same_parameters(member.run_dir, alone)
        assert_same_history(member.run_dir, alone)


def test_a_members_checkpoint_loads_as_a_single_runs_policy(tmp_path):
    """load_policy on a member's checkpoint rebuilds the policy the population evaluated."""
    from ppo_lab.evaluation import EVAL_SEED_OFFSET, evaluate_policy
    from ppo_lab.trained_policy import load_policy

    run = [*CARTPOLE, f"total_timesteps={2 * BATCH}", "eval_episodes=3"]
    members = population(tmp_path / "pop", [[*run, "seed=1"], [*run, "seed=2"]])

    for member in members:
        policy = load_policy(member.run_dir / "checkpoint.pt")
        actions = policy.act(np.zeros((3, 4), dtype=np.float32))
        assert actions.shape == (3,) and set(actions.tolist()) <= {0, 1}
        returns = evaluate_policy(
            lambda n: vector_env("gymnasium_sync", n),
            policy,
            episodes=3,
            seed=member.settings.run.seed + EVAL_SEED_OFFSET,
        )
        assert len(member.figures["eval_returns"]) == 3
        assert returns == member.figures["eval_returns"], "the policy the population evaluated"


@pytest.mark.parametrize(
    ("network", "actions", "path"),
    [
        ("nature_cnn", "discrete", "loop"),
        ("nature_cnn", "discrete", "vmap"),
        ("impala_cnn", "discrete", "loop"),
        ("impala_cnn", "discrete", "vmap"),
        ("mlp", "discrete", "batched"),
        ("mlp", "continuous", "batched"),
        ("mlp", "multidiscrete", "batched"),
        ("mlp_shared", "continuous", "batched"),
    ],
)
def test_members_compute_what_each_agent_computes_alone(network, actions, path):
    """MLP members compute with member-batched layers (one baddbmm per layer, no vmap); CNN
    members one pass each (the CPU's default), channels-last as a single run, or through vmap
    (elsewhere), which cannot lay images out channels-last and takes them NCHW. Either way each
    member's log-probabilities, entropies, values and gradients are its agent's alone."""
    import gymnasium as gym

    from ppo_lab.networks import impala_cnn, mlp, nature_cnn
    from ppo_lab.population.agents import MemberAgents

    if network.endswith("cnn"):
        space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    else:
        space = gym.spaces.Box(-1.0, 1.0, (5,), np.float32)
    action_space = {
        "discrete": gym.spaces.Discrete(4),
        "multidiscrete": gym.spaces.MultiDiscrete([3, 2]),
        "continuous": gym.spaces.Box(-1.0, 1.0, (2,), np.float32),
    }[actions]
    factory = {
        "nature_cnn": nature_cnn,
        "impala_cnn": impala_cnn,
        "mlp": mlp,
        "mlp_shared": lambda o, a: mlp(o, a, shared=True),
    }[network]
    torch.manual_seed(0)
    agents = [factory(space, action_space) for _ in range(2)]
    for k, agent in enumerate(agents):  # members that differ in their log-std too
        if hasattr(agent.head, "log_std"):
            agent.head.log_std.data.fill_(-0.5 * k)
    generators = [torch.Generator().manual_seed(k) for k in range(2)]
    members = MemberAgents(agents, generators, loop={"loop": True, "vmap": False}.get(path))
    assert (members._batched is not None) == (path == "batched")
    obs = torch.as_tensor(np.stack([[space.sample() for _ in range(3)] for _ in range(2)]))
    acts = torch.as_tensor(np.stack([[action_space.sample() for _ in range(3)] for _ in range(2)]))
    together = members.evaluate(obs, acts)
    sum(part.sum() for part in together).backward()
    for k, agent in enumerate(agents):
        alone = agent.evaluate(obs[k], acts[k])
        for got, want in zip(together, alone, strict=True):
            torch.testing.assert_close(got[k], want, rtol=1e-4, atol=1e-5)
        sum(part.sum() for part in alone).backward()
        # a gradient is a sum over the batch and the conv windows: grouped (vmap) and plain
        # convolutions round it differently, by ~3e-6 of the tensor's largest entry (IMPALA,
        # 1-2 threads), so the tolerance scales with that entry; a member's gradient landing in
        # another member's row would be off by O(1) of it
        for name, param in agent.named_parameters():
            got = members.params[name].grad[k].reshape(param.shape)
            scale = float(param.grad.abs().max())
            torch.testing.assert_close(got, param.grad, rtol=1e-4, atol=1e-4 * scale)
        row = torch.cat([p.grad.flatten() for p in agent.parameters()])  # flatten_parameters' order
        scale = float(row.abs().max())
        torch.testing.assert_close(members.flat.grad[k], row, rtol=1e-4, atol=1e-4 * scale)
    assert members.act(obs.flatten(0, 1)).shape[0] == 6
