"""`python -m ppo_lab [overrides]`: the Hydra entry point.

python -m ppo_lab                              # PPO on CartPole, CPU, W&B offline
python -m ppo_lab loss=dual_clip env=atari     # swap components by name
python -m ppo_lab -m loss='glob(*)' seed=0,1,2 # an ablation sweep, one job per core
"""

from __future__ import annotations

import gc
import logging
import sys
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from ppo_lab.checkpoint import CheckpointError
from ppo_lab.components import CONF_DIR, ConfigError
from ppo_lab.job import run_job
from ppo_lab.train import NonFiniteError

# Hydra 1.3 merges a launcher preset named like a plugin's own (submitit_local, ray) with the
# plugin's schema and says so in a deprecation notice; our presets spell every field out, so the
# merge changes nothing and the notice is noise.
PRESET_SCHEMA_NOTICE = r"\s*'hydra/launcher/\S+' is validated against ConfigStore schema"
log = logging.getLogger("ppo_lab")


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def app(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    single_run = hydra_cfg.mode == RunMode.RUN
    try:
        return run_job(cfg)
    except ConfigError as err:
        if single_run:
            sys.exit(f"Invalid configuration, nothing was run:\n{err}")
        return sweep_job_failed(hydra_cfg, err)
    except (NonFiniteError, CheckpointError) as err:  # the run's own failure, said in one line
        if single_run:
            sys.exit(f"Run failed ({type(err).__name__}): {err}")
        return sweep_job_failed(hydra_cfg, err)
    except Exception as err:
        if single_run:
            raise
        return sweep_job_failed(hydra_cfg, err)
    except KeyboardInterrupt as err:  # a stop signal: everything written so far is kept
        if single_run:
            run_dir = HydraConfig.get().runtime.output_dir
            print(
                f"Interrupted ({err}); metrics.jsonl, summary.json and a checkpoint of the last "
                f"update are in {run_dir}. Resume: the same command with hydra.run.dir={run_dir}",
                file=sys.stderr,
            )
            raise SystemExit(getattr(err, "exit_code", 130)) from None
        raise


def sweep_job_failed(hydra_cfg: DictConfig, err: Exception) -> float:
    """A job of a sweep failed; its summary.json says why. One line here, and the sweep goes
    on: the basic sweeper would stop at the first failed job and end in a traceback. Other
    sweepers (Optuna) count failed trials themselves, so they see the exception."""
    if not str(hydra_cfg.sweeper.get("_target_", "")).endswith("BasicSweeper"):
        raise err
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    log.error("job #%s failed (%s): %s", hydra_cfg.job.num, type(err).__name__, first)
    return float("nan")


def finish_sweeps(exit_code: int) -> int:
    """Write the summary of the multirun this process ran, whatever ended it; the exit code
    is non-zero when a job did not finish."""
    from ppo_lab.sweep.callback import STARTED
    from ppo_lab.sweep.summary import summarize, write_table

    for sweep_dir in STARTED:
        if not sweep_dir.is_dir():  # the multirun ended before launching a job (Hydra said why)
            continue
        table = summarize(sweep_dir, sweep_over=True)
        markdown, _ = write_table(table)
        counts = ", ".join(f"{n} {status}" for status, n in sorted(table.counts.items()))
        print(
            f"Sweep {sweep_dir}: {len(table.runs)} jobs: {counts}. Summary: {markdown}",
            file=sys.stderr,
        )
        if table.unfinished:
            exit_code = exit_code or 1
            print(
                f"Re-run what did not finish: python -m ppo_lab.sweep rerun-failed {sweep_dir}",
                file=sys.stderr,
            )
    return exit_code


def sub_groups(conf_dir: Path = CONF_DIR) -> set[str]:
    """Config groups nested in a group entry: `loss/policy`, `loss/value`, `env/backend`, ..."""
    return {
        f"{d.parent.name}/{d.name}"
        for d in conf_dir.glob("*/*/")
        if any(d.glob("*.yaml")) and d.parent.name != "hydra"
    }


def dotted_group_overrides(args: list[str], groups: set[str]) -> list[str]:
    """`loss.value=clipped` -> `loss/value=clipped`: Hydra spells a sub-group choice with `/`;
    the dotted spelling (a key path) would replace the entry by a string. Values stay as given."""
    out = []
    for arg in args:
        key, sep, value = arg.partition("=")
        path = key.replace(".", "/")
        if sep and not key.startswith(("+", "~")) and path in groups and value[:1] not in "{[":
            arg = f"{path}={value}"
        out.append(arg)
    return out


# What Hydra itself instantiates from the `hydra` node, before the app runs: its plugins only.
HYDRA_TARGET_PREFIXES = ("hydra.", "hydra_plugins.", "ppo_lab.", "optuna.samplers.")


# Hydra plugins that come with an extra: (what it is, its package, the config it provides, extra).
PLUGIN_EXTRAS = (
    ("the Optuna sweeper", "hydra_plugins.hydra_optuna_sweeper", "hydra/sweeper/optuna", "sweeps"),
    (
        "submitit's launcher (hydra/launcher=slurm or submitit_local)",
        "hydra_plugins.hydra_submitit_launcher",
        "hydra/launcher/submitit_",
        "sweeps",
    ),
    ("the Ray launcher", "hydra_plugins.hydra_ray_launcher", "hydra/launcher/ray", "ray"),
)


def hydra_node(overrides: list[str]) -> dict | Exception:
    """The `hydra` node the command line composes (unresolved), or why it does not compose."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
        plain = [o.input_line for o in parsed if not o.is_sweep_override() and o.input_line]
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            node = compose("config", overrides=plain, return_hydra_config=True).hydra
        container = OmegaConf.to_container(node, resolve=False)
    except Exception as err:  # not composable: Hydra itself reports it, unless a plugin is missing
        return err
    assert isinstance(container, dict)
    return container


def missing_plugins(node: dict | Exception) -> list[str]:
    """The launcher or sweeper chosen whose Hydra plugin is not installed, with the extra that
    installs it (Hydra would end in a traceback, or list the configs it has)."""
    import importlib.util

    if isinstance(node, Exception):  # a plugin's own config was missing: Hydra's message names it
        failure, chosen_targets = str(node), []
    else:
        failure = ""
        chosen_targets = [
            str((node.get(p) or {}).get("_target_", "")) for p in ("launcher", "sweeper")
        ]
    problems = []
    for what, package, config, extra in PLUGIN_EXTRAS:
        chosen = config in failure or any(t.startswith(package) for t in chosen_targets)
        if chosen and importlib.util.find_spec(package) is None:
            problems.append(
                f"{what} was chosen, but its Hydra plugin ({package}) is not installed; "
                f'install it with pip install "torch==2.13.0" -e ".[{extra}]"'
            )
    return problems


def untrusted_hydra_settings(node: dict | Exception) -> list[str]:
    """`_target_`s and logging factories (`()`) in the `hydra` node that Hydra would build
    before ppo_lab sees the config: a shared study file could otherwise run code there."""
    if isinstance(node, Exception):  # not composable: Hydra itself reports it, nothing is built
        return []
    problems = []

    def scan(value: object, key: str) -> None:
        if isinstance(value, dict):
            target = value.get("_target_")
            if isinstance(target, str) and not target.startswith(HYDRA_TARGET_PREFIXES):
                problems.append(
                    f"{key}._target_={target!r}: Hydra would build it before the "
                    "run; only Hydra's plugins and ppo_lab's callbacks are allowed"
                )
            if "()" in value:
                problems.append(f"{key}.(): a logging factory runs code; not allowed")
            for k, v in value.items():
                scan(v, f"{key}.{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                scan(v, f"{key}[{i}]")

    scan(node, "hydra")
    return problems


def main() -> None:
    """`python -m ppo_lab` and the `ppo-lab` script."""
    warnings.filterwarnings("ignore", message=PRESET_SCHEMA_NOTICE, category=UserWarning)
    sys.argv[1:] = dotted_group_overrides(sys.argv[1:], sub_groups())
    from hydra._internal.utils import get_args_parser

    args, _ = get_args_parser().parse_known_args(sys.argv[1:])
    node = hydra_node(list(args.overrides))
    problems = untrusted_hydra_settings(node) or missing_plugins(node)
    if problems:
        print(f"Invalid configuration, nothing was run:\n{ConfigError(problems)}", file=sys.stderr)
        sys.exit(2)
    exit_code = 0
    try:
        app()
    except SystemExit as exit_:
        exit_code = exit_.code if isinstance(exit_.code, int) else 1
        if not isinstance(exit_.code, int | None):
            print(exit_.code, file=sys.stderr)
    finally:
        exit_code = finish_sweeps(exit_code)
    fast_exit()
    if exit_code:
        sys.exit(exit_code)


def fast_exit() -> None:
    """Spare the interpreter's exit its garbage collections over every object torch and the
    other libraries created (0.3 of 0.5 s here): collect what is garbage now, so that its
    finalizers run (a file in a reference cycle is flushed and closed), then freeze the rest,
    which exit tears down by reference counts alone."""
    gc.collect()
    gc.freeze()


if __name__ == "__main__":
    main()
