"""Pin each backend's auto-reset behaviour to the one contract the loop relies on (same-step reset,
terminated vs truncated, true final observation of a truncated episode)."""

from __future__ import annotations

import functools

import envpool
import gymnasium as gym
import numpy as np
import pytest

from helpers import group_entries, vector_env

BACKENDS = group_entries("env/backend")


RESET_BOUND = 0.05  # CartPole resets every state variable uniformly in [-0.05, 0.05]


def balancing_actions(num_envs: int, t: int) -> np.ndarray:
    """Alternate left/right: keeps CartPole up well past 5 steps."""
    return np.full(num_envs, t % 2, dtype=np.int64)


def is_reset_obs(obs: np.ndarray) -> bool:
    return bool(np.all(np.abs(obs) <= RESET_BOUND))


@pytest.mark.parametrize("backend", BACKENDS)
def test_time_limit_truncates_with_final_obs_and_resets_on_the_same_step(backend):
    kwargs = {"max_episode_steps": 5}
    envs = vector_env(backend, 2, "CartPole-v1", kwargs=kwargs)
    try:
        envs.reset(seed=0)
        lengths = []
        for t in range(20):
            step = envs.step(balancing_actions(2, t))
            if (t + 1) % 5:
                assert not step.truncated.any() and step.final_obs is None
                assert step.episodes is None
                continue
            assert step.truncated.all() and not step.terminated.any()
            assert step.final_obs is not None and step.final_obs.shape == (2, 4)
            assert not is_reset_obs(step.final_obs), "final_obs is the last state, not a reset"
            assert all(is_reset_obs(o) for o in step.obs), "obs is already the next episode's"
            lengths += step.episodes.lengths.tolist()
        # Same-step reset wastes no transition: 20 steps = exactly 4 episodes of 5 per env.
        assert lengths == [5] * 8
    finally:
        envs.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_termination_has_no_final_obs_and_reports_the_episode(backend):
    envs = vector_env(backend, 1, "CartPole-v1")
    try:
        envs.reset(seed=0)
        rewards = 0.0
        for t in range(1, 100):
            step = envs.step(np.zeros(1, dtype=np.int64))  # always push left: falls in ~10 steps
            rewards += float(step.reward[0])
            if step.terminated[0]:
                assert not step.truncated[0]
                assert step.final_obs is None, "a terminal state is never bootstrapped"
                assert is_reset_obs(step.obs[0])
                assert step.episodes.lengths.tolist() == [t]
                assert step.episodes.returns.tolist() == [rewards]
                break
        else:
            pytest.fail("CartPole never terminated")
        step = envs.step(np.ones(1, dtype=np.int64))
        assert abs(step.obs[0][1]) > RESET_BOUND, "the new episode steps on from its reset state"
    finally:
        envs.close()


@pytest.mark.parametrize("groups", [2, 3])
def test_async_groups_step_every_env_once_per_step_in_order(groups):
    """envpool in pools stepped in turn (send one, act for the next, recv in order, as the
    rollout does) gives every env's transition once per step, in env order: the transitions of
    the one-pool backend, resets, truncations and finished episodes included."""
    from ppo_lab.envs import make_vector_env
    from ppo_lab.envs.base import joined, pipelined
    from ppo_lab.envs.envpool_backend import EnvpoolVectorEnv

    kwargs = {"max_episode_steps": 7}  # truncations, beside the terminations of random play
    sync = vector_env("envpool", 8, "CartPole-v1", kwargs=kwargs)
    backend = functools.partial(EnvpoolVectorEnv, num_threads=1, async_groups=groups)
    in_turn = make_vector_env(8, id="CartPole-v1", backend=backend, kwargs=kwargs)
    pipeline = pipelined(in_turn)
    assert [(g.start, g.stop) for g in pipeline.groups] == (
        [(0, 4), (4, 8)] if groups == 2 else [(0, 3), (3, 5), (5, 8)]
    )
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 2, size=(60, 8))
    try:
        np.testing.assert_array_equal(sync.reset(seed=3), in_turn.reset(seed=3))
        for g, rows in enumerate(pipeline.groups):
            pipeline.send(g, actions[0, rows])
        ended = truncated = 0
        for t in range(60):
            parts = []
            for g, rows in enumerate(pipeline.groups):
                parts.append(pipeline.recv(g))
                if t + 1 < 60:
                    pipeline.send(g, actions[t + 1, rows])
            got = joined(parts, [rows.start for rows in pipeline.groups])
            want = sync.step(actions[t])
            for field in ("obs", "reward", "terminated", "truncated"):
                np.testing.assert_array_equal(getattr(got, field), getattr(want, field))
            assert (got.final_obs is None) == (want.final_obs is None)
            if want.final_obs is not None:
                np.testing.assert_array_equal(got.final_obs, want.final_obs)
            assert (got.episodes is None) == (want.episodes is None)
            if want.episodes is not None:
                for a, b in zip(got.episodes, want.episodes, strict=True):
                    np.testing.assert_array_equal(a, b)
                ended += len(want.episodes.env_ids)
            truncated += int(want.truncated.sum())
        assert ended > 8 and truncated > 0, "the steps covered resets and truncations"
    finally:
        sync.close()
        in_turn.close()


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [("CartPole-v1", {"max_episode_steps": 9}), ("Pendulum-v1", {"max_episode_steps": 7})],
)
def test_sync_backend_steps_as_gymnasiums_sync_vector_env(env_id, kwargs):
    """`SameStepEnvs` replaces gymnasium's SyncVectorEnv (same-step mode) for speed: every step,
    reset and final observation must be the one SyncVectorEnv gives, with the same seeds."""
    ours = vector_env("gymnasium_sync", 3, env_id, kwargs=kwargs)
    theirs = gym.vector.SyncVectorEnv(
        [lambda: gym.make(env_id, **kwargs)] * 3,
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    try:
        np.testing.assert_array_equal(ours.reset(seed=5), theirs.reset(seed=5)[0])
        rng = np.random.default_rng(0)
        space = ours.single_action_space
        ended = 0
        for _ in range(40):
            if isinstance(space, gym.spaces.Discrete):
                actions = rng.integers(0, space.n, 3)
            else:
                actions = rng.uniform(space.low, space.high, (3, *space.shape)).astype(space.dtype)
            step = ours.step(actions)
            obs, reward, terminated, truncated, info = theirs.step(actions)
            np.testing.assert_array_equal(step.obs, obs)
            np.testing.assert_array_equal(step.reward, reward.astype(np.float32))
            np.testing.assert_array_equal(step.terminated, terminated)
            np.testing.assert_array_equal(step.truncated, truncated)
            bootstrap = np.flatnonzero(truncated & ~terminated)
            if len(bootstrap):
                want = np.stack([info["final_obs"][i] for i in bootstrap])
                np.testing.assert_array_equal(step.final_obs, want)
            else:
                assert step.final_obs is None
            ended += int((terminated | truncated).sum())
        assert ended >= 6, "the steps covered resets"
    finally:
        ours.close()
        theirs.close()


def test_gymnasium_default_autoreset_is_next_step():
    """Why the backend asks for SAME_STEP: by default the step after an episode's end is a reset
    whose action is ignored, a transition the learner must not train on."""
    envs = gym.make_vec("CartPole-v1", num_envs=1, vectorization_mode="sync", max_episode_steps=3)
    envs.reset(seed=0)
    for _ in range(3):
        *_, truncated, info = envs.step(np.zeros(1, dtype=np.int64))
    assert truncated[0] and "final_obs" not in info
    obs, reward, terminated, truncated, _ = envs.step(np.zeros(1, dtype=np.int64))
    assert reward[0] == 0.0 and not terminated[0] and not truncated[0] and is_reset_obs(obs[0])
    envs.close()


def test_envpool_native_autoreset_is_next_step():
    """Why the envpool backend resets finished envs itself: natively the next step is a reset."""
    envs = envpool.make_gymnasium("CartPole-v1", num_envs=1, seed=0, max_episode_steps=3)
    envs.reset()
    for t in range(3):
        obs, _, _, truncated, info = envs.step(balancing_actions(1, t))
    assert truncated[0] and not is_reset_obs(obs[0])
    obs, _, _, _, info = envs.step(np.zeros(1, dtype=np.int64))
    assert is_reset_obs(obs[0]) and info["elapsed_step"][0] == 0
    envs.close()


@pytest.mark.parametrize("backend", ["gymnasium_sync", "envpool"])
def test_same_seed_same_trajectory(backend):
    def rollout() -> np.ndarray:
        envs = vector_env(backend, 2, "CartPole-v1")
        try:
            obs = [envs.reset(seed=3).copy()]
            for t in range(30):
                obs.append(envs.step(balancing_actions(2, t)).obs.copy())
            return np.stack(obs)
        finally:
            envs.close()

    np.testing.assert_array_equal(rollout(), rollout())


def test_user_env_by_module_and_class():
    envs = vector_env("gymnasium_sync", 2, "gymnasium.envs.classic_control.cartpole:CartPoleEnv")
    try:
        assert envs.reset(seed=0).shape == (2, 4)
        assert envs.reward_threshold is None
    finally:
        envs.close()


# MuJoCo through both backends: gymnasium's MuJoCo envs (the `mujoco` package) and envpool's.
MUJOCO_BACKENDS = ["gymnasium_sync", "envpool"]


@pytest.mark.parametrize("backend", MUJOCO_BACKENDS)
def test_mujoco_time_limit_truncates_with_the_final_obs_and_resets_on_the_same_step(backend):
    envs = vector_env(backend, 2, "HalfCheetah-v4", kwargs={"max_episode_steps": 5})
    try:
        first = envs.reset(seed=0).copy()
        assert first.shape == (2, 17) and envs.single_action_space.shape == (6,)
        actions = np.full((2, 6), 0.5, dtype=np.float32)
        for t in range(10):
            step = envs.step(actions)
            assert step.reward.dtype == np.float32 and step.reward.shape == (2,)
            if (t + 1) % 5:
                assert not step.truncated.any() and step.final_obs is None
                continue
            assert step.truncated.all() and not step.terminated.any()  # the cheetah never falls
            assert step.final_obs is not None and step.final_obs.shape == (2, 17)
            # the reset state is near the initial pose; the final state has moved away from it
            assert np.abs(step.obs).max() < 0.5 < np.abs(step.final_obs).max()
            assert step.episodes.lengths.tolist() == [5, 5]
    finally:
        envs.close()


@pytest.mark.parametrize("backend", MUJOCO_BACKENDS)
def test_mujoco_termination_has_no_final_obs(backend):
    """Hopper falls when pushed: a termination, reported once, never bootstrapped."""
    envs = vector_env(backend, 1, "Hopper-v4")
    try:
        envs.reset(seed=0)
        for t in range(1, 1000):
            step = envs.step(np.ones((1, 3), dtype=np.float32))
            if step.terminated[0]:
                assert not step.truncated[0] and step.final_obs is None
                assert step.episodes.lengths.tolist() == [t]
                break
        else:
            pytest.fail("Hopper never fell")
    finally:
        envs.close()
