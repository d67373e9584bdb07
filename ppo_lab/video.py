"""One deterministic evaluation episode as a video: an mp4 in the run dir and a W&B `Video`.

Where the frames come from, first match wins:

    image observations (Atari, pixel envs)  the observation itself; for a frame stack [K, H, W]
                                            its last frame (what the agent saw, 84x84 grayscale)
    gymnasium ids and `module:Class` envs   env.render() of one env with render_mode="rgb_array"
    anything else                           no video and a warning (envpool's MuJoCo needs an
                                            OpenGL context to render, which a headless box lacks)

Needs the `video` extra (imageio and imageio-ffmpeg's ffmpeg binary; `config.validate` checks).
W&B gets the finished mp4 file, so moviepy (which W&B needs to encode raw frame arrays) is not.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from ppo_lab.envs.base import VectorEnv
from ppo_lab.networks.cnn import image_layout
from ppo_lab.tracking import Tracker, WandbTracker

MAX_FRAMES = 4_000  # cap on one video: a deterministic policy can stall a game for 27k steps
FPS = 30

ActFn = Callable[[np.ndarray], np.ndarray]  # observations [1, *obs] -> env actions [1, *act]


def is_image(space: gym.Space) -> bool:
    return isinstance(space, gym.spaces.Box) and len(space.shape or ()) == 3


def observation_frame(obs: np.ndarray, space: gym.Space) -> np.ndarray:
    """One env's image observation -> RGB frame [H, W, 3] uint8 (last frame of a stack)."""
    c, _, _, channels_last = image_layout(space, "video")
    image = obs if channels_last else np.moveaxis(obs, 0, -1)  # [H, W, C]
    if c != 3:
        image = np.repeat(image[..., -1:], 3, axis=-1)  # grayscale / frame stack: the last frame
    if image.dtype != np.uint8:
        image = (np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    return np.ascontiguousarray(image)


def _frames_from_observations(
    make_envs: Callable[[int], VectorEnv], policy: ActFn, seed: int, max_frames: int
) -> np.ndarray:
    envs = make_envs(1)
    try:
        obs = envs.reset(seed=seed)
        frames = []
        for _ in range(max_frames):
            frames.append(observation_frame(obs[0], envs.single_observation_space))
            step = envs.step(policy(obs))
            if step.episodes is not None:  # the game is over (all lives, for Atari)
                break
            obs = step.obs
        return np.stack(frames)
    finally:
        envs.close()


def headless_rendering() -> None:
    """Without a display, MuJoCo renders off-screen through EGL. Set only here, when a video is
    recorded: with MUJOCO_GL=egl in the environment, `import mujoco` itself loads EGL and
    OpenGL, which training does not need and a machine without libEGL cannot load."""
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("MUJOCO_GL", "egl")  # read when gymnasium makes its viewer
        os.environ.setdefault("PYOPENGL_PLATFORM", "egl")  # read when OpenGL is first imported
    logging.getLogger("OpenGL").setLevel(logging.WARNING)  # "No OpenGL_accelerate module loaded"


def _frames_from_render(
    env_id: str, kwargs: dict[str, Any], policy: ActFn, seed: int, max_frames: int
) -> np.ndarray:
    from ppo_lab.envs.gymnasium_backend import env_constructor

    headless_rendering()
    env = env_constructor(env_id, {**kwargs, "render_mode": "rgb_array"})()
    try:
        obs, _ = env.reset(seed=seed)
        frames = []
        for _ in range(max_frames):
            frames.append(np.asarray(env.render(), dtype=np.uint8))
            obs, _, terminated, truncated, _ = env.step(policy(np.asarray(obs)[None])[0])
            if terminated or truncated:
                break
        return np.stack(frames)
    finally:
        env.close()


def record_episode(
    make_envs: Callable[[int], VectorEnv],
    env_cfg: dict[str, Any],
    observation_space: gym.Space,
    policy: ActFn,
    seed: int,
    max_frames: int = MAX_FRAMES,
) -> np.ndarray | None:
    """Frames [T, H, W, 3] uint8 of one episode of `policy`, or None (with a warning) if the env
    has neither image observations nor a way to render here."""
    if is_image(observation_space):
        return _frames_from_observations(make_envs, policy, seed, max_frames)
    env_id, backend = env_cfg.get("id"), str((env_cfg.get("backend") or {}).get("_target_"))
    if isinstance(env_id, str) and backend.endswith("GymnasiumVectorEnv"):
        try:
            return _frames_from_render(
                env_id, dict(env_cfg.get("kwargs") or {}), policy, seed, max_frames
            )
        except Exception as err:  # a video is never worth failing the run for
            warnings.warn(
                f"eval_video: {env_id} could not render ({type(err).__name__}: {err}); no video",
                stacklevel=2,
            )
            return None
    warnings.warn(
        f"eval_video: {env_id} ({backend}) has no image observations and is not "
        "rendered here; no video",
        stacklevel=2,
    )
    return None


def save_video(frames: np.ndarray, path: Path, fps: int = FPS) -> Path:
    """Write frames [T, H, W, 3] uint8 as an H.264 mp4."""
    import imageio.v2 as imageio

    path.parent.mkdir(parents=True, exist_ok=True)
    # macro_block_size=2: keep 84x84 as is (the default 16 would rescale it to 96x96)
    imageio.mimwrite(path, list(frames), fps=fps, macro_block_size=2)
    return path


def log_video(tracker: Tracker, path: Path, step: int, key: str = "eval/video") -> None:
    """Attach the mp4 to the W&B run (no-op for other trackers)."""
    if isinstance(tracker, WandbTracker):
        import wandb

        tracker.log({key: wandb.Video(str(path), format="mp4")}, step=step)
