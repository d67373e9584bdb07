"""The launchers' config schemas, registered as `hydra/launcher=processes` and `populations`."""

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore


@dataclass
class ProcessLauncherConf:
    _target_: str = "hydra_plugins.ppo_lab_launcher.process_launcher.ProcessLauncher"
    n_jobs: int = -1  # jobs at once; -1 = the cores this process may use


ConfigStore.instance().store(
    group="hydra/launcher", name="processes", node=ProcessLauncherConf, provider="ppo_lab"
)


@dataclass
class PopulationLauncherConf:
    _target_: str = "hydra_plugins.ppo_lab_launcher.population_launcher.PopulationLauncher"
    n_jobs: int = -1  # populations at once; -1 = the cores this process may use
    max_members: int = -1  # the largest population; -1 = no limit


ConfigStore.instance().store(
    group="hydra/launcher", name="populations", node=PopulationLauncherConf, provider="ppo_lab"
)
