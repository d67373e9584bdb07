"""The launcher's config schema, registered as `hydra/launcher=processes`."""

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore


@dataclass
class ProcessLauncherConf:
    _target_: str = "hydra_plugins.ppo_lab_launcher.process_launcher.ProcessLauncher"
    n_jobs: int = -1  # jobs at once; -1 = the cores this process may use


ConfigStore.instance().store(
    group="hydra/launcher", name="processes", node=ProcessLauncherConf, provider="ppo_lab"
)
