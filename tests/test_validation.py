"""Bad input fails before any environment is built, with one message naming the key and what
would be valid."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hydra.errors import ConfigCompositionException

from ppo_lab.config import validate
from ppo_lab.schema import ConfigError
from tests.conftest import REPO

BAD_OVERRIDES = [
    # (overrides, the key the message must name, what it must say is valid)
    (["+typo=1"], "typo", "valid: advantage"),
    (["+loss.clip_epss=0.1"], "loss.clip_epss", "takes clip_eps"),
    (["+advantage.lamda=0.9"], "advantage.lamda", "valid keys: lam"),
    (["gamma=abc"], "gamma", "expected float"),
    (["total_timesteps=1.5"], "total_timesteps", "expected int"),
    (["anneal_lr=maybe"], "anneal_lr", "expected bool"),
    (["gamma=1.5"], "gamma", "in [0, 1]"),
    (["loss.clip_eps=1.2"], "loss.clip_eps", "in (0, 1)"),
    (["loss.clip_eps=0"], "loss.clip_eps", "in (0, 1)"),
    (["advantage.lam=-0.1"], "advantage.lam", "in [0, 1]"),
    (["optim.lr=0"], "optim.lr", "> 0"),
    (["optim.lr=-1e-3"], "optim.lr", "> 0"),
    (["num_envs=0"], "num_envs", ">= 1"),
    (["num_steps=-4"], "num_steps", ">= 1"),
    (["update_epochs=0"], "update_epochs", ">= 1"),
    (["num_minibatches=3"], "num_minibatches", "must divide num_envs * num_steps"),
    (["total_timesteps=100"], "total_timesteps", "smaller than one batch"),
    (["loss=dual_clip", "loss.dual_clip=1.0"], "loss.dual_clip", "> 1"),
    (["loss.ent_coef=-0.01"], "loss.ent_coef", ">= 0"),
    (["loss=value_clip", "loss.value=mse"], "loss.value_clip_eps", "value loss 'mse' takes"),
    (["loss=vanilla", "+loss.dual_clip=2.0"], "loss.dual_clip", "policy loss 'vanilla' takes"),
    (["loss.policy=clipp"], "loss.policy", "valid: clip, dual_clip"),
    (["advantage=nstep", "advantage.n=0"], "advantage.n", ">= 1"),
    (["normalization.advantage=sometimes"], "normalization.advantage", "'minibatch'"),
    (["env.backend=ray"], "env.backend", "'envpool'"),
    (["network.activation=swish"], "network.activation", "'tanh'"),
    (["device=tpu"], "device", "valid: auto, cpu, cuda"),
]


@pytest.mark.parametrize(("overrides", "key", "valid"), BAD_OVERRIDES,
                         ids=[" ".join(o) for o, _, _ in BAD_OVERRIDES])
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
    assert [p.split("=")[0].split(":")[0] for p in err.value.problems] == ["typo", "gamma",
                                                                           "optim.lr"]


def test_unknown_group_entry_is_rejected_by_hydra_listing_the_options(compose_cfg):
    with pytest.raises(ConfigCompositionException, match="Could not find 'loss/dual_clp'"):
        compose_cfg("loss=dual_clp")


def test_typo_without_plus_is_rejected_by_hydra(compose_cfg):
    with pytest.raises(ConfigCompositionException, match="clip_epss"):
        compose_cfg("loss.clip_epss=0.1")


def test_cli_exits_non_zero_before_building_anything(tmp_path):
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "ppo_lab", "num_minibatches=3", "logger=none",
         f"hydra.run.dir={run_dir}"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "num_minibatches=3: must divide num_envs * num_steps" in result.stderr
    assert "Traceback" not in result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "invalid_config"
    assert "num_minibatches" in summary["error"]
    assert not (run_dir / "metrics.jsonl").exists(), "no training may start on a bad config"
