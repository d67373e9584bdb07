"""The one component mechanism: any `_target_` with a typed signature plugs in, with no edit to
ppo_lab; what it takes from the trainer it declares."""

from __future__ import annotations

import functools

import pytest
import torch

from ppo_lab.components import (
    ConfigError,
    build,
    caller_inputs,
    check_entry,
    declared_inputs,
    inputs_declared_by,
    trainer_inputs,
)
from ppo_lab.config import validate
from ppo_lab.train import train

from helpers import compose_config

CALLS: list[float] = []


def sigmoid_surrogate(
    logp_new, logp_old, advantages, weight=None, *, clip_eps: float = 0.2, temperature: float = 1.0
):
    """A policy loss defined outside ppo_lab: -mean(2 sigmoid((r - 1) / t) A), recorded."""
    ratio = (logp_new - logp_old).exp()
    CALLS.append(temperature)
    objective = 2 * torch.sigmoid((ratio - 1) / temperature) * advantages
    zero = ratio.new_zeros(())
    kl = ((ratio - 1) - (logp_new - logp_old)).detach().mean()
    info = {"approx_kl": kl, "approx_kl_k1": zero, "clipfrac": zero, "dual_clip_frac": zero}
    return -objective.mean(), info


def test_a_policy_loss_from_a_test_module_trains_through_its_target(tmp_path):
    CALLS.clear()
    cfg = compose_config(
        "logger=none",
        "eval_episodes=0",
        "total_timesteps=512",
        "loss.policy._target_=test_components.sigmoid_surrogate",
        "+loss.policy.temperature=0.5",
    )
    figures = train(validate(cfg, allow=("test_components",)), tmp_path, {}, "custom-loss")
    assert figures["global_step"] == 512
    assert CALLS and set(CALLS) == {0.5}  # it was called, with its own coefficient
    # 2 updates x the CartPole recipe's epochs x its 1 minibatch
    assert cfg.num_minibatches == 1 and len(CALLS) == 2 * cfg.update_epochs


def test_its_signature_is_its_schema():
    cfg = compose_config(
        "loss.policy._target_=test_components.sigmoid_surrogate", "+loss.policy.temperature=hot"
    )
    assert check_entry(cfg.loss, "loss", allow=("test_components",)) == [
        "loss.policy.temperature='hot': should be a valid number"
    ]


def test_an_entry_without_partial_for_a_callable_with_inputs_is_refused():
    cfg = compose_config("~loss.policy._partial_")
    with pytest.raises(
        ConfigError,
        match=r"loss.policy._partial_: must be true; clip takes "
        r"logp_new, logp_old, advantages, weight",
    ):
        validate(cfg)


def test_only_target_and_partial_are_allowed_as_underscore_keys():
    problems = check_entry(
        {"_target_": "ppo_lab.optim.adam", "_partial_": True, "_recursive_": False, "_args_": [1]},
        "optim",
    )
    assert problems == [
        "optim._recursive_: not allowed in an entry; only _target_, _partial_",
        "optim._args_: not allowed in an entry; only _target_, _partial_",
    ]


def test_declared_inputs_are_passed_and_nothing_else():
    @trainer_inputs("kl_beta")
    def penalised(x, kl_beta, *, scale: float = 1.0):
        return x * kl_beta * scale

    part = functools.partial(penalised, scale=2.0)
    assert declared_inputs(part) == {"kl_beta"}
    assert inputs_declared_by(part, kl_beta=0.5, logp_target=None) == {"kl_beta": 0.5}
    assert inputs_declared_by(lambda x: x, kl_beta=0.5) == {}
    assert caller_inputs(penalised) == ["x", "kl_beta"]
    with pytest.raises(TypeError, match="declares inputs it does not take"):
        trainer_inputs("missing")(penalised)


def test_build_calls_a_partial_entry_with_its_inputs_and_returns_it_without():
    entry = {"_target_": "ppo_lab.optim.adam", "_partial_": True, "lr": 0.01}
    layer = torch.nn.Linear(2, 1)
    assert build(entry, params=layer.parameters()).param_groups[0]["lr"] == 0.01
    assert isinstance(build(entry), functools.partial)


def test_built_losses_are_plain_partials_without_per_call_policy_checks():
    """Hydra's own partials re-check its target policy on each call: too slow per minibatch."""
    loss = build(compose_config("loss=kl_penalty").loss)
    assert type(loss.policy) is functools.partial and type(loss.value) is functools.partial
    estimator = build(compose_config("advantage=vtrace").advantage)
    assert type(estimator) is functools.partial and declared_inputs(estimator)
