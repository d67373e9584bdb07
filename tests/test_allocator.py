"""A training process keeps the memory it frees (ppo_lab/allocator.py): a big tensor allocated
again reuses its pages instead of faulting in fresh ones from the kernel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="glibc's allocator: Linux only"
)

FAULTS_OF_REALLOCATING = """
import resource, torch
for _ in range(10):  # 64 MiB: glibc's heap grows to hold it aligned, then reuses it
    x = torch.ones(2**24); del x
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    x = torch.ones(2**24); del x
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
KEEP = "from ppo_lab.allocator import keep_freed_memory; assert keep_freed_memory()\n"


def faults_of_reallocating(setup: str) -> int:
    """Minor page faults of allocating and freeing 64 MiB five times, after `setup`, in a fresh
    process."""
    out = subprocess.run(
        [sys.executable, "-c", setup + FAULTS_OF_REALLOCATING],
        cwd=REPO / "tests",
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    return int(out.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def default_faults() -> int:
    """glibc's own behaviour, the cost the module removes: each 64 MiB tensor is mapped anew and
    faulted in page by page (16384 faults with 4 KiB pages, fewer with transparent huge pages)."""
    faults = faults_of_reallocating("")
    assert faults >= 5, "each reallocation should fault by default, or the tests below cannot fail"
    return faults


def test_freed_memory_is_reused_without_page_faults(default_faults: int):
    assert faults_of_reallocating(KEEP) <= default_faults / 100


def test_a_training_process_keeps_freed_memory(tmp_path: Path, default_faults: int):
    setup = (
        "from pathlib import Path; from helpers import compose_config; "
        "from ppo_lab.config import validate; from ppo_lab.train import train; "
        "settings = validate(compose_config('logger=none', 'total_timesteps=512', "
        "'eval_episodes=0')); "
        f"assert train(settings, Path({str(tmp_path)!r}), {{}}, 'run')['global_step'] == 512\n"
    )
    assert faults_of_reallocating(setup) <= default_faults / 100
