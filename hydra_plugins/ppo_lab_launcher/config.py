"""The launcher's config schema, registered as `hydra/launcher=processes`."""

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore


@dataclass
class ProcessLauncherConf:
    _target_: str = "hydra_plugins.ppo_lab_launcher.process_launcher.ProcessLauncher"
    n_jobs: int = -1  # processes at once; -1 = the cores this process may use
    pack: bool = False  # true: a population of jobs per process (hydra/launcher=population)
    max_members: int = -1  # the largest population; -1 = no limit


ConfigStore.instance().store(
    group="hydra/launcher", name="processes", node=ProcessLauncherConf, provider="ppo_lab"
)
