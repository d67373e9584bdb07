"""Environment families: Atari and MuJoCo through envpool, any gymnasium env (by id or
`module:Class`). The Atari preprocessing recipe, the real game score in the logs, short real
training runs of each family, periodic evaluation and evaluation videos."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import envpool
import gymnasium as gym
import numpy as np
import pytest
from omegaconf import DictConfig, OmegaConf, open_dict

from ppo_lab.components import ConfigError, build
from ppo_lab.config import validate
from ppo_lab.train import train

from helpers import compose_config

ATARI = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)


def compose_app(*overrides: str) -> tuple[DictConfig, dict[str, str]]:
    """The composed config and each group's choice, as `python -m ppo_lab` gets them."""
    full = compose_config(*overrides, return_hydra_config=True)
    choices = {
        k: str(v) for k, v in full.hydra.runtime.choices.items() if not k.startswith("hydra")
    }
    with open_dict(full):
        del full["hydra"]
    return full, choices


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# --- recipes ---------------------------------------------------------------------------------


def test_atari_recipe_sets_envpool_preprocessing_explicitly():
    cfg, choices = compose_app("env=atari")
    assert (choices["recipe"], choices["network"], choices["env/backend"]) == (
        "atari",
        "nature_cnn",
        "envpool",
    )
    kwargs = dict(cfg.env.kwargs)
    known = set(envpool.make_spec(cfg.env.id).config._fields)
    assert set(kwargs) <= known, f"not envpool options: {set(kwargs) - known}"
    assert kwargs == {
        "noop_max": 30,
        "frame_skip": 4,
        "episodic_life": True,
        "use_fire_reset": True,
        "reward_clip": True,
        "img_height": 84,
        "img_width": 84,
        "gray_scale": True,
        "stack_num": 4,
        "repeat_action_probability": 0.0,
        "full_action_space": False,
        "max_episode_steps": 27000,
    }
    assert cfg.env.backend.num_threads == 2
    run = validate(cfg).run
    assert (run.num_envs, run.num_steps, run.update_epochs, run.num_minibatches) == (8, 128, 4, 4)
    assert (run.gamma, run.total_timesteps) == (0.99, 10_000_000)
    assert (cfg.optim.lr, cfg.loss.policy.clip_eps, cfg.loss.ent_coef, cfg.loss.vf_coef) == (
        2.5e-4,
        0.1,
        0.01,
        0.5,
    )


@pytest.mark.parametrize("loss", ["vanilla", "clip", "dual_clip", "value_clip", "kl_penalty"])
def test_the_atari_recipe_sets_a_clip_range_only_on_losses_that_clip(loss):
    cfg, _ = compose_app("env=atari", f"loss={loss}")
    validate(cfg)  # no policy loss is handed a coefficient it does not take
    clips = loss in ("clip", "dual_clip", "value_clip")
    assert cfg.loss.policy.get("clip_eps") == (0.1 if clips else None)


def test_an_env_entry_describes_only_the_environment():
    from helpers import CONF

    for path in (CONF / "env").glob("*.yaml"):
        entry = OmegaConf.load(path)
        assert set(entry) - {"defaults"} <= {"_target_", "_partial_", "id", "kwargs", "backend"}
        for item in entry.get("defaults", []):
            assert item in ("_self_",) or "backend" in item or "recipe" in str(item), item


def test_recipe_none_leaves_the_env_with_the_defaults():
    cfg, choices = compose_app("env=atari", "recipe=none", "network=nature_cnn")
    assert choices["recipe"] == "none"
    assert (cfg.total_timesteps, cfg.loss.policy.clip_eps, cfg.optim.lr) == (500_000, 0.2, 2.5e-4)


def test_mujoco_recipe_is_cleanrl_continuous():
    cfg, choices = compose_app("env=mujoco")
    assert (choices["network"], choices["normalization"]) == ("mlp", "obs_reward")
    assert (cfg.env.id, choices["env/backend"]) == ("HalfCheetah-v4", "gymnasium_sync")
    run = validate(cfg).run
    sizes = (run.num_envs, run.num_steps, run.update_epochs, run.num_minibatches)
    assert sizes == (1, 2048, 10, 32)
    assert (run.gamma, cfg.advantage.lam, run.total_timesteps) == (0.99, 0.95, 1_000_000)
    assert (cfg.optim.lr, cfg.loss.ent_coef) == (3e-4, 0.0)
    assert not cfg.network.shared


def test_the_command_line_beats_the_env_recipe():
    cfg, choices = compose_app(
        "env=atari",
        "network=impala_cnn",
        "num_envs=4",
        "optim.lr=1e-3",
        "loss.policy.clip_eps=0.2",
        "env.id=Pong-v5",
    )
    assert choices["network"] == "impala_cnn"
    assert (cfg.num_envs, cfg.optim.lr, cfg.loss.policy.clip_eps, cfg.env.id) == (
        4,
        1e-3,
        0.2,
        "Pong-v5",
    )
    assert cfg.num_steps == 128  # the recipe's value where the command line is silent


def test_observation_normalization_of_uint8_images_is_refused_before_training(tmp_path):
    cfg, choices = compose_app("env=atari", "normalization=obs_reward", "logger=none")
    with pytest.raises(ConfigError, match="normalization=adv"):
        train(validate(cfg), tmp_path, choices, "test")
    assert not (tmp_path / "metrics.jsonl").exists()


def test_eval_interval_needs_evaluation_episodes():
    cfg, _ = compose_app("eval_interval=5", "eval_episodes=0")
    with pytest.raises(ConfigError, match="eval_episodes"):
        validate(cfg)


# --- Atari -----------------------------------------------------------------------------------


def test_atari_observations_are_uint8_frame_stacks():
    cfg, _ = compose_app("env=atari")
    envs = build(cfg.env, num_envs=2)
    try:
        space = envs.single_observation_space
        assert space.shape == (4, 84, 84) and space.dtype == np.uint8
        obs = envs.reset(seed=0)
        assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
        step = envs.step(np.ones(2, dtype=np.int64))
        assert step.obs.dtype == np.uint8 and step.obs.shape == (2, 4, 84, 84)
    finally:
        envs.close()


class StepSpy:
    """Records what envpool itself returns, next to what the backend reports."""

    def __init__(self, pool):
        self.pool, self.calls = pool, []

    def step(self, actions, env_id=None):  # envpool's step is send, then recv
        self.pool.send(actions, env_id)
        return self.recv(reset=False, return_info=True)

    def recv(self, **kwargs):
        out = self.pool.recv(**kwargs)
        _, reward, terminated, _, info = out
        self.calls.append(
            {
                k: np.array(v)
                for k, v in (
                    ("env_id", info["env_id"]),
                    ("reward", reward),
                    ("terminated", terminated),
                    ("score", info["reward"]),
                    ("game_over", info["terminated"]),
                    ("lives", info["lives"]),
                )
            }
        )
        return out

    def __getattr__(self, name):
        return getattr(self.pool, name)


def test_logged_atari_return_is_the_real_game_score():
    """With episodic_life every lost life ends an RL episode, and with reward_clip the agent
    learns from sign(r); the logged episodic return is still the whole game's unclipped score.

    Space Invaders scores 5-30 points per alien, so clipping changes the sum; 3 lives.
    """
    cfg, _ = compose_app("env=atari", "env.id=SpaceInvaders-v5")
    envs = build(cfg.env, num_envs=1)
    rng = np.random.default_rng(0)
    try:
        envs.reset(seed=0)
        spy = envs._pools[0] = StepSpy(envs._pools[0])
        clipped, rl_episodes, steps = 0.0, 0, 0
        for _ in range(5000):
            step = envs.step(rng.integers(0, envs.single_action_space.n, size=1))
            assert set(np.unique(step.reward)) <= {-1.0, 0.0, 1.0}, "rewards are clipped"
            clipped += float(step.reward[0])
            rl_episodes += int(step.terminated[0])
            steps += 1
            if step.episodes is not None:
                break
        else:
            pytest.fail("no Space Invaders game ended in 5000 random steps")
        # envpool's own record of the game: unclipped points on every step, all lives
        game_over_step = [c for c in spy.calls if c["terminated"][0]][-1]
        assert game_over_step["game_over"][0], "the episode was reported at game over only"
        score = sum(float(c["score"].sum()) for c in spy.calls)
        lives = int(spy.calls[0]["lives"][0])
        assert rl_episodes == lives == 3, "each of the 3 lives ended an RL episode"
        assert step.episodes.returns.tolist() == [pytest.approx(score)], "unclipped game score"
        assert score > clipped > 0, "clipping would have under-reported it"
        assert step.episodes.lengths.tolist() == [steps], "the length spans the whole game"
    finally:
        envs.close()


# --- short runs of each family ---------------------------------------------------------------


def short_run(tmp_path: Path, *overrides: str) -> tuple[dict, list[dict]]:
    cfg, choices = compose_app("logger=none", *overrides)
    figures = train(validate(cfg), tmp_path, choices, "test")
    return figures, read_metrics(tmp_path)


@pytest.mark.slow
def test_atari_trains_briefly(tmp_path):
    figures, rows = short_run(
        tmp_path,
        "env=atari",
        "num_steps=32",
        "total_timesteps=512",
        "update_epochs=1",
        "eval_episodes=1",
        "env.kwargs.max_episode_steps=200",
    )
    train_rows = [r for r in rows if "charts/SPS" in r]
    assert [r["global_step"] for r in train_rows] == [256, 512]
    assert figures["global_step"] == 512 and len(figures["eval_returns"]) == 1
    assert (tmp_path / "checkpoint.pt").exists()


@pytest.mark.slow
def test_mujoco_trains_briefly_with_periodic_evaluation(tmp_path):
    figures, rows = short_run(
        tmp_path,
        "env=mujoco",
        "num_steps=128",
        "num_minibatches=4",
        "update_epochs=2",
        "total_timesteps=384",
        "eval_interval=2",
        "eval_episodes=1",
        "+env.kwargs.max_episode_steps=100",
    )
    evals = [r for r in rows if "eval/episodic_return" in r]
    assert [r["global_step"] for r in evals] == [256, 384], "every 2 updates, and at the end"
    assert all(np.isfinite(r["eval/episodic_return"]) for r in evals)
    assert any("charts/episodic_return" in r for r in rows), "100-step episodes ended"
    assert figures["eval_return"] == evals[-1]["eval/episodic_return"]


@pytest.mark.slow
def test_gymnasium_id_trains_briefly(tmp_path):
    figures, rows = short_run(
        tmp_path,
        "env=gymnasium",
        "env.id=Acrobot-v1",
        "num_envs=2",
        "num_steps=64",
        "total_timesteps=256",
        "update_epochs=1",
        "eval_episodes=1",
    )
    assert [r["global_step"] for r in rows if "charts/SPS" in r] == [128, 256]
    assert figures["reward_threshold"] == -100.0, "the chosen id's own gymnasium spec"
    from ppo_lab.evaluation import EVAL_SEED_OFFSET, evaluate_policy
    from ppo_lab.trained_policy import load_policy

    from helpers import vector_env

    policy = load_policy(tmp_path / "checkpoint.pt")
    again = evaluate_policy(
        lambda n: vector_env("gymnasium_sync", n, "Acrobot-v1"),
        policy,
        episodes=1,
        seed=1 + EVAL_SEED_OFFSET,
    )
    assert again == figures["eval_returns"], "the saved Acrobot policy is the one evaluated"


USER_ENV = '''
import gymnasium as gym
import numpy as np


class GuessEnv(gym.Env):
    """Reward 1 for action == sign of the observation; 10 steps."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, length=10):
        self.length = length

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.x = self.np_random.uniform(-1, 1, (1,)).astype(np.float32)
        return self.x, {}

    def step(self, action):
        reward = float(int(action) == int(self.x[0] > 0))
        self.t += 1
        self.x = self.np_random.uniform(-1, 1, (1,)).astype(np.float32)
        return self.x, reward, False, self.t >= self.length, {}
'''


@pytest.mark.slow
def test_user_env_by_module_and_class_trains(tmp_path, monkeypatch):
    (tmp_path / "my_envs.py").write_text(textwrap.dedent(USER_ENV))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PPO_LAB_ALLOW", "my_envs")  # the user allows their own env module
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    figures, rows = short_run(
        run_dir,
        "env=gymnasium",
        "env.id=my_envs:GuessEnv",
        "+env.kwargs.length=8",
        "num_envs=2",
        "num_steps=32",
        "total_timesteps=128",
        "update_epochs=1",
        "eval_episodes=2",
    )
    lengths = [r["charts/episodic_length"] for r in rows if "charts/episodic_length" in r]
    assert lengths and set(lengths) == {8.0}, "the user's kwargs reached the constructor"
    assert len(figures["eval_returns"]) == 2


# --- evaluation video ------------------------------------------------------------------------


def test_video_frames_are_the_atari_observations(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    from ppo_lab import video
    from ppo_lab.tracking import WandbTracker

    cfg, _ = compose_app("env=atari")
    seen = []

    def policy(obs):
        seen.append(obs[0, -1].copy())  # the newest frame of the stack
        return np.ones(1, dtype=np.int64)

    frames = video.record_episode(
        lambda n: build(cfg.env, num_envs=n), dict(cfg.env), ATARI, policy, seed=0, max_frames=30
    )
    assert frames.shape == (30, 84, 84, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames[..., 0], np.stack(seen))
    path = video.save_video(frames, tmp_path / "videos" / "eval.mp4")
    assert path.stat().st_size > 0
    tracker = WandbTracker(tmp_path, {}, {}, "video-test", "vid123", mode="offline")
    video.log_video(tracker, path, step=1)
    tracker.finish({}, 0)
    assert list((tmp_path / "wandb").rglob("media/videos/eval/*.mp4"))


def test_no_video_for_envs_that_cannot_render(recwarn):
    """envpool MuJoCo: vector observations and no renderer: a warning, not a crash."""
    from ppo_lab import video

    cfg, _ = compose_app("env=mujoco", "env/backend=envpool")
    obs_space = gym.spaces.Box(-np.inf, np.inf, (17,), np.float64)  # HalfCheetah's
    frames = video.record_episode(
        lambda n: build(cfg.env, num_envs=n), dict(cfg.env), obs_space, lambda o: o, seed=0
    )
    assert frames is None
    assert any("no video" in str(w.message) for w in recwarn)


@pytest.mark.slow
def test_eval_video_is_saved_in_the_run_dir(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    short_run(
        tmp_path,
        "env=atari",
        "num_steps=32",
        "total_timesteps=256",
        "update_epochs=1",
        "eval_episodes=1",
        "eval_video=true",
        "env.kwargs.max_episode_steps=100",
    )
    assert [p.name for p in (tmp_path / "videos").iterdir()] == ["eval_256.mp4"]


def test_cartpole_video_frames_come_from_gymnasium_rendering():
    """Classic control renders rgb_array frames through pygame (the `video` extra)."""
    pytest.importorskip("pygame")
    from ppo_lab import video

    cfg, _ = compose_app()
    env_node = OmegaConf.to_container(cfg.env)
    space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
    frames = video.record_episode(
        lambda n: build(cfg.env, num_envs=n),
        env_node,
        space,
        lambda o: np.zeros(len(o), dtype=np.int64),
        seed=0,
    )
    assert frames is not None and frames.dtype == np.uint8
    assert frames.shape[1:] == (400, 600, 3) and 8 <= len(frames) <= 500  # pushed left: falls
    assert frames[0].std() > 0, "a real picture, not a blank frame"


def test_mujoco_video_frames_come_from_gymnasium_rendering():
    """env=mujoco renders through gymnasium's MuJoCo envs (EGL off-screen on a headless box)."""
    from ppo_lab import video

    cfg, _ = compose_app("env=mujoco")
    env_node = OmegaConf.to_container(cfg.env)
    space = gym.spaces.Box(-np.inf, np.inf, (17,), np.float64)
    frames = video.record_episode(
        lambda n: build(cfg.env, num_envs=n),
        env_node,
        space,
        lambda o: np.zeros((len(o), 6), dtype=np.float32),
        seed=0,
        max_frames=20,
    )
    if frames is None:
        pytest.skip("no off-screen OpenGL (EGL) on this machine")
    assert frames.dtype == np.uint8 and frames.shape == (20, 480, 480, 3)
    assert frames[0].std() > 0, "a real picture, not a blank frame"


def test_mujoco_training_loads_no_opengl_and_sets_no_renderer():
    """Only a video needs OpenGL: making and stepping MuJoCo envs on a headless machine must not
    load EGL (MUJOCO_GL=egl in the environment makes `import mujoco` load it, and a machine
    without libEGL then cannot make any MuJoCo env)."""
    import os
    import subprocess
    import sys

    script = textwrap.dedent(
        """
        import os, sys
        from ppo_lab.envs.gymnasium_backend import GymnasiumVectorEnv
        envs = GymnasiumVectorEnv("HalfCheetah-v4", 2, {})
        envs.reset(seed=0)
        envs.step(envs.single_action_space.sample()[None].repeat(2, 0))
        envs.close()
        print("OpenGL" in sys.modules, "MUJOCO_GL" in os.environ)
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MUJOCO_GL")}
    env.pop("PYOPENGL_PLATFORM", None)
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split()[-2:] == ["False", "False"]
