"""Networks: every `network` entry is a factory
`(observation_space, action_space, **cfg) -> ActorCritic`.
"""

from ppo_lab.networks.actor_critic import ActorCritic
from ppo_lab.networks.cnn import impala_cnn, nature_cnn, pixels_for_vmap
from ppo_lab.networks.heads import CategoricalHead, GaussianHead, MultiDiscreteHead, head_for
from ppo_lab.networks.mlp import mlp

__all__ = [
    "ActorCritic",
    "CategoricalHead",
    "GaussianHead",
    "MultiDiscreteHead",
    "head_for",
    "impala_cnn",
    "mlp",
    "nature_cnn",
    "pixels_for_vmap",
]
