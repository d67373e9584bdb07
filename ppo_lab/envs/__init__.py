"""Vector environment backends behind one interface.

Every backend hands the training loop the same `VectorEnv` contract (see `base.py`): `step`
returns the observation to act on next (already reset where an episode ended, "same-step"
auto-reset), `terminated` and `truncated` separately, and the true final observation of every
truncated episode, so that a time limit bootstraps from V(final obs) while a termination does not.
"""

from ppo_lab.envs.base import EpisodeStats, Step, VectorEnv, env_actions
from ppo_lab.envs.factory import make_vector_env

__all__ = [
    "EpisodeStats",
    "Step",
    "VectorEnv",
    "env_actions",
    "make_vector_env",
]
