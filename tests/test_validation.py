"""Bad input fails before any environment is built, with one message naming the key and what
would be valid."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hydra.errors import ConfigCompositionException

from ppo_lab.components import ConfigError
from ppo_lab.config import validate

from helpers import REPO

BAD_OVERRIDES = [
    # (overrides, the key the message must name, what it must say is valid)
    (["+typo=1"], "typo", "valid: advantage"),
    (["+loss.policy.clip_epss=0.1"], "loss.policy.clip_epss", "valid keys: clip_eps"),
    (["+advantage.lamda=0.9"], "advantage.lamda", "valid keys: lam"),
    (["gamma=abc"], "gamma", "should be a valid number"),
    (["total_timesteps=1.5"], "total_timesteps", "should be a valid integer"),
    (["anneal_lr=maybe"], "anneal_lr", "should be a valid boolean"),
    (["gamma=1.5"], "gamma", "less than or equal to 1"),
    (["gamma=nan"], "gamma", "finite number"),
    (["loss.policy.clip_eps=1.2"], "loss.policy.clip_eps", "less than 1"),
    (["loss.policy.clip_eps=0"], "loss.policy.clip_eps", "greater than 0"),
    (["advantage.lam=-0.1"], "advantage.lam", "greater than or equal to 0"),
    (["optim.lr=0"], "optim.lr", "greater than 0"),
    (["optim.lr=-1e-3"], "optim.lr", "greater than 0"),
    (["optim.lr=1e6"], "optim.lr", "less than or equal to 1"),
    (["optim.betas=[0.9]"], "optim.betas", "at least 2 items"),
    (["network.hidden_sizes=[64,0]"], "network.hidden_sizes[1]", "greater than or equal to 1"),
    (["num_envs=0"], "num_envs", "greater than or equal to 1"),
    (["num_steps=-4"], "num_steps", "greater than or equal to 1"),
    (["update_epochs=0"], "update_epochs", "greater than or equal to 1"),
    (["num_minibatches=3"], "num_minibatches", "must divide num_envs * num_steps"),
    (["total_timesteps=100"], "total_timesteps", "smaller than one batch"),
    (["loss=dual_clip", "loss.policy.dual_clip=1.0"], "loss.policy.dual_clip", "greater than 1"),
    (["loss.ent_coef=-0.01"], "loss.ent_coef", "greater than or equal to 0"),
    (
        ["loss=value_clip", "loss/value=mse", "+loss.value.clip_eps=0.2"],
        "loss.value.clip_eps",
        "unknown key for mse",
    ),
    (
        ["loss=vanilla", "+loss.policy.dual_clip=2.0"],
        "loss.policy.dual_clip",
        "unknown key for vanilla",
    ),
    (["loss.policy=clipp"], "loss.policy", "pick one with loss/policy=clipp"),
    (["loss/policy=kl_penalty"], "loss", "needs a KL coefficient schedule"),
    (["loss=kl_penalty", "loss/policy=clip"], "loss", "only a KL-penalised policy loss"),
    (["advantage=nstep", "advantage.n=0"], "advantage.n", "greater than or equal to 1"),
    (["normalization.advantage_scope=sometimes"], "normalization.advantage_scope", "'minibatch'"),
    (
        ["env.backend.num_threads=-1", "env/backend=envpool"],
        "env.backend.num_threads",
        "greater than or equal to 0",
    ),
    (["network.activation=swish"], "network.activation", "'tanh'"),
    (["device=tpu"], "device", "valid: auto, cpu, cuda"),
    (
        ["+env.kwargs.hook._target_=builtins.open"],
        "env.kwargs.hook._target_",
        "not allowed inside a plain value",
    ),
    (["optim._target_=ppo_lab.nothing.here"], "optim._target_", "not an allowed component"),
]


@pytest.mark.parametrize(
    ("overrides", "key", "valid"), BAD_OVERRIDES, ids=[" ".join(o) for o, _, _ in BAD_OVERRIDES]
)
def test_each_bad_value_is_named_with_what_is_valid(compose_cfg, overrides, key, valid):
    with pytest.raises(ConfigError) as err:
        validate(compose_cfg(*overrides))
    assert len(err.value.problems) == 1, err.value.problems
    message = err.value.problems[0]
    assert message.startswith(key), message
    assert valid in message, message


def test_all_problems_are_reported_at_once(compose_cfg):
    with pytest.raises(ConfigError) as err:
        validate(compose_cfg("gamma=2", "optim.lr=0", "+typo=1"))
    assert [p.split("=")[0].split(":")[0] for p in err.value.problems] == [
        "typo",
        "gamma",
        "optim.lr",
    ]


def test_unknown_group_entry_is_rejected_by_hydra_listing_the_options(compose_cfg):
    with pytest.raises(ConfigCompositionException, match="Could not find 'loss/dual_clp'"):
        compose_cfg("loss=dual_clp")


def test_typo_without_plus_is_rejected_by_hydra(compose_cfg):
    with pytest.raises(ConfigCompositionException, match="clip_epss"):
        compose_cfg("loss.policy.clip_epss=0.1")


def test_an_allowed_target_that_does_not_import_says_so(compose_cfg):
    with pytest.raises(ConfigError, match=r"optim._target_='my_optims.adam': cannot be imported"):
        validate(compose_cfg("optim._target_=my_optims.adam"), allow=("my_optims",))


def test_cli_exits_non_zero_before_building_anything(tmp_path):
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ppo_lab",
            "num_minibatches=3",
            "logger=none",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "num_minibatches=3: must divide num_envs * num_steps" in result.stderr
    assert "Traceback" not in result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "invalid_config"
    assert "num_minibatches" in summary["error"]
    assert not (run_dir / "metrics.jsonl").exists(), "no training may start on a bad config"
