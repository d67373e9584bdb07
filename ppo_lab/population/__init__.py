"""Populations: many seeds and coefficient settings of one config trained in one process.

    agents.py         M actor-critics as rows of one flat parameter, one batched pass for all
    batched.py        MLPs of M members as one module: a baddbmm per linear layer, no vmap
    optim.py          Adam(W) and gradient-norm clipping per member
    coefficients.py   members' loss and estimator coefficients as tensors [M]
    normalization.py  each member's running statistics, stacked
    packing.py        which runs can be one population (`hydra/launcher=population` groups by it)
    members.py        a member's run: metrics, tracker, checkpoints, evaluation, resume
    state.py          the population's networks, optimizer, statistics and coefficients
    update.py         one PPO update of every member at once; rollout layouts
    trainer.py        the loop: `train_population(members)`

`python -m ppo_lab population=16` trains seeds seed..seed+15 of one config as members;
`-m ... hydra/launcher=population` packs a sweep's jobs into populations.
"""
