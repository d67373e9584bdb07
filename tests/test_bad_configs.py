"""A catalog of bad input, run as a user runs it (`python -m ppo_lab ...`, in-process): each
exits non-zero before any env is built, with a message naming the key and what would be valid,
and no traceback. Typos, wrong types, NaN/inf, out-of-range values, impossible combinations,
unknown studies, malformed lists, untrusted targets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ppo_lab.__main__ import main

CATALOG = [
    # (overrides, what the message must contain)
    ("experiment=loss_ablaton", "Could not find 'experiment/loss_ablaton'"),
    ("sweep=cartpole_optna", "Could not find 'sweep/cartpole_optna'"),
    ("loss=dual_clp", "Could not find 'loss/dual_clp'"),
    ("loss.value=msee", "Could not find 'loss/value/msee'"),
    ("env.backend=envpol", "Could not find 'env/backend/envpol'"),
    ("network=cnn", "Could not find 'network/cnn'"),
    ("optim=sgd", "Could not find 'optim/sgd'"),
    ("recipe=atarii", "Could not find 'recipe/atarii'"),
    ("loss.policy.clip_eps=inf", "loss.policy.clip_eps=inf: should be a finite number"),
    ("loss.policy.clip_eps=-inf", "loss.policy.clip_eps=-inf: should be a finite number"),
    ("gamma=inf", "gamma=inf: should be a finite number"),
    ("advantage.lam=nan", "advantage.lam=nan: should be a finite number"),
    ("optim.lr=nan", "optim.lr=nan: should be a finite number"),
    ("optim.lr=2", "optim.lr=2: should be less than or equal to 1"),
    ("optim.eps=0", "optim.eps=0: should be greater than 0"),
    ("optim.betas=[0.9,1.0]", "optim.betas[1]=1.0: should be less than 1"),
    ("optim.betas=[0.9,0.99,0.999]", "optim.betas=[0.9, 0.99, 0.999]: Value should have at most 2"),
    ("optim.betas=abc", "optim.betas='abc': 'str' instances are not allowed as a Sequence"),
    ("network.hidden_sizes=[64,-1]", "network.hidden_sizes[1]=-1: should be greater than or equal"),
    ("network.hidden_sizes=64", "network.hidden_sizes=64: should be an instance of Sequence"),
    ("network.hidden_sizes=[64,abc]", "network.hidden_sizes[1]='abc': should be a valid integer"),
    (
        "env=atari network=impala_cnn network.channels=[16,0]",
        "network.channels[1]=0: should be greater than or equal to 1",
    ),
    ("env=atari network.features=0", "network.features=0: should be greater than or equal to 1"),
    ("eval_episodes=1000000", "eval_episodes=1000000: should be less than or equal to 1000"),
    ("eval_episodes=-1", "eval_episodes=-1: should be greater than or equal to 0"),
    ("checkpoint_interval=-1", "checkpoint_interval=-1: should be greater than or equal to 0"),
    ("seed=-1", "seed=-1: should be greater than or equal to 0"),
    ("torch_threads=-2", "torch_threads=-2: should be greater than or equal to 0 or be 'auto'"),
    ("seeds_per_trial=0", "seeds_per_trial=0: should be greater than or equal to 1"),
    ("max_grad_norm=0", "max_grad_norm=0: should be greater than 0"),
    ("early_stop_kl=0", "early_stop_kl=0: should be greater than 0"),
    ("on_nonfinite=ignore", "on_nonfinite='ignore': should be 'stop' or 'skip'"),
    ("device=cuda", "device='cuda': CUDA is not available on this machine"),
    ("cuda_graphs=true", "cuda_graphs=true: CUDA graphs need a CUDA device (no CUDA device here)"),
    ("cuda_graphs=true device=cpu", "CUDA graphs need a CUDA device (device=cpu)"),
    ("device=cuda:abc", "device='cuda:abc': not a device; valid: auto, cpu"),
    ("loss=kl_penalty loss.kl_coef.target=-1", "loss.kl_coef.target=-1: should be greater than 0"),
    ("loss/policy=kl_penalty", "needs a KL coefficient schedule: add +loss/kl_coef=adaptive"),
    ("loss=kl_penalty loss/policy=clip", "only a KL-penalised policy loss"),
    ("loss=vanilla +loss.policy.clip_eps=0.1", "loss.policy.clip_eps: unknown key for vanilla"),
    ("env.id=CartPol-v1", "env.id='CartPol-v1': not a registered gymnasium id"),
    ("env=atari env.id=Pongg-v5", "not an envpool task; did you mean Pong-v5"),
    ("+env.kwargs.max_episode_steps=abc", "env.kwargs.max_episode_steps='abc': expected an int"),
    ("+env.kwargs.max_episode_steps=0", "env.kwargs.max_episode_steps=0: expected an int >= 1"),
    ("env=atari env.kwargs.stack_num=four", "env.kwargs.stack_num='four': expected int"),
    (
        "env=mujoco env/backend=envpool +env.kwargs.frame_skp=2",
        "env.kwargs.frame_skp: not an option of envpool's",
    ),
    ("env=mujoco +env.kwargs.frame_skp=2", "unexpected keyword argument 'frame_skp'"),
    ("+env.kwargs.gravity=9.8", "env.kwargs.gravity: not an argument of CartPoleEnv"),
    (
        "network=nature_cnn",
        "network=nature_cnn with env.id=CartPole-v1: network=nature_cnn expects image observations",
    ),
    ("env=atari network=mlp", "network=mlp expects flat vector observations"),
    ("env=atari normalization=obs_reward", "normalization.observation=true with uint8 image"),
    ("env.id=os:system", "env.id='os:system': not an allowed component"),
    ("loss.policy._target_=builtins.eval", "loss.policy._target_='builtins.eval': not an allowed"),
    ("+env.kwargs.f._target_=builtins.open", "env.kwargs.f._target_: not allowed inside a plain"),
    ("+logger.tags=[${oc.env:MY_SECRET_TOKEN}]", "reads the environment variable MY_SECRET_TOKEN"),
    ("num_minibatches=512", "num_minibatches=512: must divide num_envs * num_steps"),
    ("num_minibatches=256", "num_minibatches=256: leaves minibatches of 1 sample"),
    ("eval_interval=5 eval_episodes=0", "eval_episodes=0: eval_interval and eval_video need"),
    ("update_epochs=1.5", "update_epochs=1.5: should be a valid integer"),
    ("anneal_lr=sometimes", "anneal_lr='sometimes': should be a valid boolean"),
    ("+network.observation_space=1", "network.observation_space: unknown key for mlp"),
    ("loss.vf_coef=abc", "loss.vf_coef='abc': should be a valid number"),
    ("+hydra.callbacks.x={_target_:os.system}", "hydra.callbacks.x._target_='os.system'"),
]


@pytest.mark.parametrize(("overrides", "expected"), CATALOG, ids=[c[0] for c in CATALOG])
def test_bad_input_is_refused_before_any_env_naming_the_key(
    tmp_path, monkeypatch, capsys, overrides, expected
):
    run_dir = tmp_path / "run"
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "ppo_lab",
            *overrides.split(),
            "total_timesteps=512",
            "logger=none",
            f"hydra.run.dir={run_dir}",
        ],
    )
    with pytest.raises(SystemExit) as exit_:
        main()
    out = capsys.readouterr()
    text = out.err + out.out
    assert exit_.value.code not in (0, None), text[-2000:]
    assert expected in text, text[-2000:]
    assert "Traceback" not in text, text[-3000:]
    assert not (run_dir / "metrics.jsonl").exists(), "no training may start on a bad config"
    assert not Path(run_dir / "checkpoint.pt").exists()


def test_the_catalog_has_forty_cases_or_more():
    assert len(CATALOG) >= 40
