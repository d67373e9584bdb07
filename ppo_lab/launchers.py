"""What the entry point does about the launcher presets in conf/hydra/launcher/.

    local           joblib, one job per core (the default of `-m`; the `sweeps` extra)
    submitit_local  every job its own process on this machine (the `sweeps` extra)
    slurm           a SLURM cluster through submitit, requeued on preemption/time-out (`sweeps`)
    ray             a Ray cluster (the `ray` extra)

Without the `sweeps` extra, the default `local` launcher cannot run: a multirun then falls back to
Hydra's basic launcher (one job after another) with a notice, instead of failing.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from collections.abc import Sequence

JOBLIB_PLUGIN = "hydra_plugins.hydra_joblib_launcher"
# Hydra 1.3 merges a preset named like a plugin's own (submitit_local, ray) with the plugin's
# schema and says so in a deprecation notice; the presets spell every field out, so that the
# merge changes nothing: the notice is noise.
SCHEMA_NOTICE = r"\s*'hydra/launcher/\S+' is validated against ConfigStore schema"
MULTIRUN_FLAGS = ("-m", "--multirun")


def plugin_installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a broken entry
        return False


def launcher_overrides(argv: Sequence[str]) -> list[str]:
    """Overrides to add to the command line: `hydra/launcher=basic` when the joblib plugin is
    missing and the command line picks no launcher itself (else none)."""
    if plugin_installed(JOBLIB_PLUGIN):
        return []
    if any(arg.lstrip("+~").startswith("hydra/launcher=") for arg in argv):
        return []
    if any(arg in MULTIRUN_FLAGS or arg.startswith(("experiment=", "sweep=")) for arg in argv):
        print("ppo_lab: hydra-joblib-launcher is not installed (pip install -e '.[sweeps]'): "
              "jobs run one after another (hydra/launcher=basic)", file=sys.stderr)
    return ["hydra/launcher=basic"]


def prepare_launch(argv: list[str]) -> None:
    """Adjust `argv` (sys.argv) in place and silence the preset-schema notice, before Hydra."""
    warnings.filterwarnings("ignore", message=SCHEMA_NOTICE, category=UserWarning)
    argv.extend(launcher_overrides(argv[1:]))
