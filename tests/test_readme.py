"""The README's two set-up commands are the ones CI runs: they cannot drift apart."""

from __future__ import annotations

import re

from helpers import REPO


def setup_commands() -> list[str]:
    section = (REPO / "README.md").read_text().split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_readme_has_exactly_two_setup_commands_train_then_test():
    install_and_train, install_and_test = setup_commands()
    assert install_and_train.endswith("python -m ppo_lab")
    assert install_and_test.endswith("python -m pytest")
    for command in (install_and_train, install_and_test):
        assert 'pip install "torch==2.13.0"' in command, "the CPU wheel pin keeps CUDA out"


def test_ci_runs_the_readme_test_command_exactly():
    ci_lines = (REPO / ".ci" / "run").read_text().splitlines()
    assert setup_commands()[1] in ci_lines
