"""Real faults: stop signals at a random update, kills around checkpoint writes, NaNs, crafted
checkpoints. Whatever happens, what a run wrote stays whole: a resumed history has neither gaps
nor duplicates, the last good checkpoint loads, and nothing untrusted runs code."""

from __future__ import annotations

import json
import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from ppo_lab.checkpoint import CheckpointError, load_checkpoint
from ppo_lab.components import ConfigError
from ppo_lab.config import validate
from ppo_lab.train import NonFiniteError, train

from helpers import REPO, compose_config

BATCH = 256  # CartPole recipe: 8 envs x 32 steps
RUN = ["logger=none", "eval_episodes=0", "checkpoint_interval=5"]


def metrics_steps(run_dir: Path) -> list[int]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["global_step"] for r in rows if "charts/SPS" in r]


def summary_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def cli(run_dir: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "ppo_lab", *RUN, *overrides, f"hydra.run.dir={run_dir}"]


def env_with_tests() -> dict[str, str]:
    tests = str(REPO / "tests")
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([tests, str(REPO)]),
        "PPO_LAB_ALLOW": "sweep_helpers",
    }


def wait_for_updates(run_dir: Path, count: int, proc: subprocess.Popen, timeout: float = 120):
    deadline = time.monotonic() + timeout
    metrics = run_dir / "metrics.jsonl"
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"no {count} updates within {timeout}s (exit {proc.poll()})")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGUSR2])
def test_a_stop_signal_at_a_random_update_checkpoints_and_the_rerun_resumes(tmp_path, signum):
    run_dir = tmp_path / "run"
    total = 40 * BATCH
    proc = subprocess.Popen(
        cli(run_dir, f"total_timesteps={total}"),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_updates(run_dir, random.Random(signum).randint(2, 12), proc)
    os.kill(proc.pid, signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, stderr[-2000:]
    assert "Traceback" not in stderr and "Resume: the same command" in stderr, stderr[-2000:]

    summary = summary_of(run_dir)
    steps = metrics_steps(run_dir)
    assert summary["status"] == "interrupted" and signal.Signals(signum).name in summary["error"]
    assert summary["global_step"] == steps[-1] < total  # the step reached, flushed
    checkpoint = load_checkpoint(run_dir / "checkpoint.pt")
    assert checkpoint["global_step"] == steps[-1], "the signal wrote a checkpoint of that update"

    rerun = subprocess.run(
        cli(run_dir, f"total_timesteps={total}"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert summary_of(run_dir)["resumed_from_step"] == steps[-1]
    assert metrics_steps(run_dir) == [BATCH * i for i in range(1, 41)]
    assert not list(run_dir.glob(".*.tmp"))


KILLER = textwrap.dedent("""
    import os, signal, sys
    import ppo_lab.train as train_module
    from ppo_lab.__main__ import main

    when, at = sys.argv.pop(1), int(sys.argv.pop(1))  # kill before / during / after write `at`
    real_save, calls = train_module.save_checkpoint, []

    def save(path, state):
        calls.append(1)
        if len(calls) == at and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        if len(calls) == at and when == "during":
            import ppo_lab.checkpoint as c
            real_torch_save = c.torch.save
            def torn(obj, f):
                with open(f, "wb") as out:
                    out.write(b"half a checkpoint")
                os.kill(os.getpid(), signal.SIGKILL)
            c.torch.save = torn
        real_save(path, state)
        if len(calls) == at and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)

    train_module.save_checkpoint = save
    main()
""")


@pytest.mark.slow
@pytest.mark.parametrize("when", ["before", "during", "after"])
def test_sigkill_around_a_checkpoint_write_then_resume_leaves_a_clean_history(tmp_path, when):
    run_dir = tmp_path / "run"
    total = 20 * BATCH
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, when, "2", *cli(run_dir, f"total_timesteps={total}")[3:]],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    survivor = load_checkpoint(run_dir / "checkpoint.pt")  # whatever the kill point
    assert survivor["update"] == (10 if when == "after" else 5)
    assert summary_of(run_dir)["status"] == "running"  # SIGKILL: nothing could record more
    if when == "during":
        assert list(run_dir.glob(".checkpoint.pt.*.tmp")), "the torn write is a temp file"

    rerun = subprocess.run(
        cli(run_dir, f"total_timesteps={total}"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert metrics_steps(run_dir) == [BATCH * i for i in range(1, 21)]
    assert summary_of(run_dir)["resumed_from_step"] == survivor["global_step"]
    assert not list(run_dir.glob(".*.tmp")), "no stray temp files"


def test_a_nan_reward_stops_the_run_naming_it_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = compose_config(
        *RUN,
        "checkpoint_interval=1",
        "total_timesteps=2560",
        "env.id=sweep_helpers:nan_reward_cartpole",
        "+env.kwargs.nan_at=70",
    )
    figures: dict = {}
    with pytest.raises(NonFiniteError) as err:
        train(validate(cfg, allow=("sweep_helpers",)), tmp_path, {}, "nan", figures)
    # each env's 70th step falls in the third rollout of 32 steps
    assert str(err.value).startswith(
        "non-finite reward from the environment in update 3 (global step 512...768)"
    )
    assert figures["global_step"] == 512
    assert load_checkpoint(tmp_path / "checkpoint.pt")["global_step"] == 512
    assert metrics_steps(tmp_path) == [256, 512]


def test_on_nonfinite_skip_skips_the_update_and_counts_it(tmp_path):
    cfg = compose_config(
        *RUN,
        "total_timesteps=2560",
        "on_nonfinite=skip",
        "env.id=sweep_helpers:nan_reward_cartpole",
        "+env.kwargs.nan_at=70",
    )
    figures = train(validate(cfg, allow=("sweep_helpers",)), tmp_path, {}, "nan-skip")
    assert figures["global_step"] == 2560 and figures["skipped_updates"] == 1
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert "losses/policy_loss" not in rows[2] and rows[2]["charts/skipped_updates"] == 1


def test_a_nan_loss_term_is_named_before_the_parameters_change(tmp_path, monkeypatch):
    import ppo_lab.losses.value as value_losses

    real_mse = value_losses.mse

    def nan_mse(values, old_values, returns, weight=None):
        loss, info = real_mse(values, old_values, returns, weight)
        return loss * float("nan"), info

    monkeypatch.setattr(value_losses, "mse", nan_mse)
    cfg = compose_config(*RUN, "total_timesteps=1024")
    figures: dict = {}
    with pytest.raises(NonFiniteError, match=r"non-finite value loss in update 1 "):
        train(validate(cfg), tmp_path, {}, "nan-loss", figures)
    assert figures["global_step"] == 0 and not (tmp_path / "checkpoint.pt").exists()


class Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_crafted_checkpoint_runs_no_code_through_load_policy_or_resume(tmp_path, monkeypatch):
    from ppo_lab.trained_policy import load_policy

    monkeypatch.chdir(tmp_path)
    crafted = tmp_path / "checkpoint.pt"
    torch.save({"format": 2, "model": Payload()}, crafted)
    with pytest.raises(CheckpointError, match="not a ppo_lab checkpoint that loads as plain data"):
        load_policy(crafted)
    crafted.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(CheckpointError):
        train(validate(compose_config(*RUN, "total_timesteps=512")), tmp_path, {}, "resume")
    assert not (tmp_path / "pwned").exists()


def test_a_finished_run_rerun_in_its_dir_says_so_and_touches_nothing(tmp_path):
    run_dir = tmp_path / "run"
    first = subprocess.run(
        cli(run_dir, "total_timesteps=512"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert first.returncode == 0, first.stderr[-2000:]
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    again = subprocess.run(
        cli(run_dir, "total_timesteps=512"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0 and "already holds a finished run" in again.stdout
    after = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    changed = {p for p in before if before[p] != after.get(p)} | (after.keys() - before.keys())
    assert changed <= {
        run_dir / ".hydra" / "hydra.yaml",
        run_dir / ".hydra" / "config.yaml",
        run_dir / ".hydra" / "overrides.yaml",
        run_dir / "__main__.log",
    }, changed


def test_two_runs_with_the_same_seed_are_bitwise_identical(tmp_path):
    cfg = compose_config(*RUN, "total_timesteps=1024")
    train(validate(cfg), tmp_path / "a", {}, "a")
    train(validate(cfg), tmp_path / "b", {}, "b")
    a, b = (load_checkpoint(tmp_path / d / "checkpoint.pt")["model"] for d in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = [
        {k: v for k, v in json.loads(line).items() if k not in ("time", "charts/SPS")}
        for d in "ab"
        for line in (tmp_path / d / "metrics.jsonl").read_text().splitlines()
    ]
    assert strip[: len(strip) // 2] == strip[len(strip) // 2 :]


def test_resume_keeps_the_wandb_run_id(tmp_path):
    cfg = compose_config(*RUN, "total_timesteps=1024", "logger=wandb", "logger.mode=offline")
    train(validate(cfg), tmp_path, {}, "a")
    run_id = (tmp_path / "wandb_run_id").read_text().strip()
    assert load_checkpoint(tmp_path / "checkpoint.pt")["wandb_run_id"] == run_id
    assert [p.name.rsplit("-", 1)[-1] for p in (tmp_path / "wandb").glob("offline-run-*")] == [
        run_id
    ]


def test_resume_false_in_a_dir_with_a_run_is_refused(tmp_path):
    train(validate(compose_config(*RUN, "total_timesteps=512")), tmp_path, {}, "a")
    with pytest.raises(ConfigError, match="already holds a run"):
        train(
            validate(compose_config(*RUN, "total_timesteps=512", "resume=false")), tmp_path, {}, "b"
        )


def test_a_launchers_requeue_handler_runs_after_the_stop_and_its_sigterm_bypass_stays():
    """Under submitit: SIGUSR2 is its requeue (ours first, then its), SIGTERM its bypass."""
    from ppo_lab.signals import GracefulStop, StopRequested

    requeued = []

    def checkpoint_and_try_requeue(signum, frame):  # submitit's handler, by name and role
        requeued.append(signum)

    def bypass(signum, frame):
        pass

    previous = {s: signal.getsignal(s) for s in (signal.SIGUSR2, signal.SIGTERM)}
    signal.signal(signal.SIGUSR2, checkpoint_and_try_requeue)
    signal.signal(signal.SIGTERM, bypass)
    try:
        with GracefulStop() as stop:
            assert signal.getsignal(signal.SIGTERM) is bypass, "the launcher keeps SIGTERM"
            os.kill(os.getpid(), signal.SIGUSR2)
            time.sleep(0.05)
            assert stop.requested and stop.signal_name == "SIGUSR2" and not requeued
            with pytest.raises(StopRequested) as err:
                stop.raise_if_requested()
        assert err.value.exit_code == 128 + signal.SIGUSR2
        err.value.hand_over()
        assert requeued == [signal.SIGUSR2]
        assert signal.getsignal(signal.SIGUSR2) is checkpoint_and_try_requeue, "restored"
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
