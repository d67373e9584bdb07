"""PPO losses as pure functions: `policy` (surrogate objectives) and `value` (critic regression).

Each function takes 1-D tensors of one minibatch and returns `(loss, info)`: a 0-dim loss to
minimise and a dict of detached 0-dim diagnostics whose keys do not depend on the variant.
A `conf/loss/*.yaml` entry names one of them with `_partial_: true`; the keyword-only,
`Range`-annotated coefficients are that entry's schema (see `ppo_lab.schema`).
"""
