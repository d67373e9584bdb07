"""The PPO loop: collect a rollout, estimate advantages, update on minibatches, log. Top to bottom.

    for each update:
        rollout     <- N envs x T steps with pi_old                       (collect_rollout)
        pi_old, V   <- one batched pass over the rollout                  (evaluate_rollout)
        A, R        <- advantage estimator over the rollout               (update: estimate)
        for each epoch, for each minibatch:                               (update: epochs)
            loss = policy_loss(r, A) + vf_coef * value_loss(V, R) - ent_coef * entropy
            Adam step on the clipped gradient
        log metrics, checkpoint

Every well-known PPO implementation detail is a named line below with a short comment, and the
config entry that switches it.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from omegaconf import OmegaConf
from torch import Tensor

from ppo_lab.advantages import Estimator
from ppo_lab.allocator import keep_freed_memory
from ppo_lab.checkpoint import (
    check_resumable,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
    training_state,
)
from ppo_lab.components import ConfigError, build, declared_inputs, inputs_declared_by
from ppo_lab.config import RunSettings, Settings
from ppo_lab.envs import Step, VectorEnv, env_actions
from ppo_lab.envs.base import pipelined
from ppo_lab.evaluation import evaluate_and_log
from ppo_lab.files import remove_stale_temp_files
from ppo_lab.flat_params import (
    clip_grad_norm,
    flat_state,
    flatten_parameters,
    per_parameter_state,
    zero_gradients,
)
from ppo_lab.losses import PPOLoss
from ppo_lab.networks import ActorCritic
from ppo_lab.normalization import Normalizers, normalize_advantages
from ppo_lab.optim import Optimizer
from ppo_lab.progress import Progress
from ppo_lab.rollout import Rollout, RolloutValues, observation_dtype
from ppo_lab.signals import GracefulStop
from ppo_lab.threads import intra_op_threads
from ppo_lab.tracking import MetricsFile, Tracker, run_id

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16}  # the `amp` setting -> ActorCritic.encode
RECENT_EPISODES = 10  # "final return" = mean undiscounted return of the last 10 training episodes
CHECKPOINT = "checkpoint.pt"
log = logging.getLogger("ppo_lab")


class NonFiniteError(RuntimeError):
    """A NaN or inf in what the env returned or in a loss term; names the quantity and where."""


def resolve_device(name: str) -> torch.device:
    """device=auto: the first CUDA device when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)


class DiagnosticMeans:
    """Sums 0-dim diagnostic tensors over minibatches on the device; one host sync at the end."""

    def __init__(self) -> None:
        self._sums: dict[str, Tensor] = {}
        self.count = 0

    def add(self, values: dict[str, Tensor]) -> None:
        for key, value in values.items():
            # the first is copied: a CUDA graph's next replay reuses its outputs' memory
            first = key not in self._sums
            self._sums[key] = value.detach().clone() if first else self._sums[key] + value
        self.count += 1

    def means(self) -> dict[str, float]:
        keys = list(self._sums)
        totals = torch.stack([self._sums[k].float() for k in keys]).tolist() if keys else []
        return {k: v / max(self.count, 1) for k, v in zip(keys, totals, strict=True)}


@torch.inference_mode()
def collect_rollout(
    envs: VectorEnv,
    agent: ActorCritic,
    buf: Rollout,
    obs_np: np.ndarray,
    norm: Normalizers,
    raw_obs: Tensor | None,
    bootstrap_truncations: bool = True,
) -> tuple[np.ndarray, list[float], list[int], list[int]]:
    """Fill `buf` with T steps of every env acting with the current policy.

    Only the actor runs per step; log-probs and values are computed afterwards in one batched
    pass (`evaluate_rollout`), except for a shared trunk, which records them while acting
    (`buf.acted`). `agent` may be a population's `MemberAgents` (env-major [M * N] rows).
    Envs that step in groups (`envs.base.Pipelined`) step one group while the policy acts for
    the next; every env still takes its T steps in order.
    Returns the next observation and the returns, lengths and envs of the episodes that
    finished.
    `bootstrap_truncations=False` treats a time limit as a termination (as CleanRL does).
    """
    device = buf.obs.device
    action_space = envs.single_action_space
    pipeline = pipelined(envs)
    returns: list[float] = []
    lengths: list[int] = []
    env_ids: list[int] = []
    buf.truncations.clear()
    next_obs = np.empty_like(obs_np)

    def act(t: int, rows: slice, obs: np.ndarray) -> np.ndarray:
        """The policy's actions for envs `rows` at step t, on their observations."""
        obs_t = torch.from_numpy(obs)  # zero-copy view of the env's array
        if raw_obs is None:
            buf.obs[t, rows].copy_(obs_t, non_blocking=True)
        else:
            raw_obs[t, rows].copy_(obs_t, non_blocking=True)
            buf.obs[t, rows].copy_(norm.observation(raw_obs[t, rows]))  # detail: obs normalization
        if buf.acted is None:
            buf.actions[t, rows] = agent.act(buf.obs[t, rows])
        else:  # a shared trunk: log pi_old and V come from this pass, not a second one
            acted = agent.act_and_evaluate(buf.obs[t, rows])
            buf.actions[t, rows], buf.acted[0][t, rows], buf.acted[1][t, rows] = acted
        return env_actions(buf.actions[t, rows], action_space)

    def record(t: int, rows: slice, step: Step) -> None:
        """Envs `rows`' transitions of step t (`step` indexes them from 0)."""
        ended = step.terminated | step.truncated
        if not bootstrap_truncations:  # detail off: a time limit ends the return like a failure
            buf.host.record(t, step.reward, ended, step.truncated, rows)
        else:
            buf.host.record(t, step.reward, step.terminated, step.truncated, rows)
        if bootstrap_truncations and step.final_obs is not None:  # detail: bootstrap V(final obs)
            truncated = np.flatnonzero(step.truncated & ~step.terminated) + rows.start
            truncated_t = torch.from_numpy(truncated).to(device)
            final = torch.from_numpy(step.final_obs).to(device)
            observed = norm.observation(final, envs=truncated_t).to(buf.obs.dtype)
            buf.truncations.append((t, truncated_t, observed))
        if step.episodes is not None:
            returns.extend(step.episodes.returns.tolist())
            lengths.extend(step.episodes.lengths.tolist())
            env_ids.extend((step.episodes.env_ids + rows.start).tolist())

    for g, rows in enumerate(pipeline.groups):
        pipeline.send(g, act(0, rows, obs_np[rows]))
    for t in range(buf.num_steps):
        for g, rows in enumerate(pipeline.groups):
            step = pipeline.recv(g)  # the other groups step meanwhile
            record(t, rows, step)
            if t + 1 < buf.num_steps:
                pipeline.send(g, act(t + 1, rows, step.obs))
            else:
                next_obs[rows] = step.obs
    obs_t = torch.from_numpy(next_obs)
    buf.last_obs.copy_(norm.observation(obs_t.to(device)) if norm.obs is not None else obs_t)
    buf.upload()
    if norm.reward is not None:  # detail: reward scaling by the std of discounted returns
        buf.rewards.copy_(norm.reward.scale_rollout(buf.rewards, buf.done))
    return next_obs, returns, lengths, env_ids


@torch.no_grad()
def evaluate_rollout(
    agent: ActorCritic, buf: Rollout, norm: Normalizers, fresh: bool = False
) -> RolloutValues:
    """log pi(a_t|s_t), V(s_t) and V(s_{t+1}) of the whole rollout in a few batched calls.

    What the acting pass recorded (`buf.acted`, shared trunks) is used unless `fresh` (the
    current networks after some epochs)."""
    shape = buf.rewards.shape  # [T, N]
    if buf.acted is not None and not fresh:
        logp, values = buf.acted
    else:
        logp, _, values = agent.evaluate(buf.flat(buf.obs), buf.flat(buf.actions))
    values = norm.values(values).view(shape)
    next_values = torch.empty_like(values)
    next_values[:-1] = values[1:]  # V(s_{t+1}) inside the rollout
    next_values[-1] = norm.values(agent.value(buf.last_obs))  # bootstrap at the rollout edge
    for t, envs_idx, final_obs in buf.truncations:  # true final states of truncated episodes
        next_values[t, envs_idx] = norm.values(agent.value(final_obs))
    return RolloutValues(logp.view(shape), values, next_values)


def estimate_advantages(
    estimator: Estimator,
    gamma: float,
    buf: Rollout,
    behaviour: RolloutValues,
    current: RolloutValues,
) -> tuple[Tensor, Tensor]:
    """(advantages, returns) [T, N] from the configured estimator (`advantage` group).

    `behaviour` is what the rollout's policy made of it (pi_old); `current` is the critic (and
    policy) the targets are computed with: the same on the first epoch, the current networks
    when advantages are recomputed.
    """
    trainer_state = inputs_declared_by(
        estimator, logp_behaviour=behaviour.logprobs, logp_target=current.logprobs
    )
    return estimator(
        buf.rewards,
        current.values,
        current.next_values,
        buf.terminated,
        buf.done,
        gamma,
        **trainer_state,
    )


def annealed_lr(base_lr: float, update_index: int, num_updates: int) -> float:
    """Linear decay to 0: lr_k = base * (1 - (k - 1) / K) for update k = 1 .. K."""
    return base_lr * (1.0 - (update_index - 1) / num_updates)


def explained_variance(predicted: Tensor, target: Tensor) -> float:
    """1 - Var[target - predicted] / Var[target]: 1 is perfect, 0 no better than the mean."""
    var_target = target.var()
    return float("nan") if var_target == 0 else float(1 - (target - predicted).var() / var_target)


class Minibatch(NamedTuple):
    """What the rollout holds for one minibatch [B] (advantages before per-minibatch scaling)."""

    obs: Tensor
    actions: Tensor
    logp_old: Tensor
    advantages: Tensor
    old_values: Tensor


def minibatch_loss(
    agent: ActorCritic,
    loss: PPOLoss,
    batch: Minibatch,
    targets: Tensor,
    normalize_minibatch_advantages: bool,
    kl_beta: float | Tensor | None,
) -> tuple[Tensor, dict[str, Tensor], Tensor]:
    """(total loss, its terms and diagnostics, log pi(a|s)) of the current networks on `batch`."""
    logp, entropy, values = agent.evaluate(batch.obs, batch.actions)
    adv = batch.advantages
    if normalize_minibatch_advantages:
        adv = normalize_advantages(adv)  # detail: per-minibatch advantage normalization
    total, info = loss(
        logp, batch.logp_old, adv, values, batch.old_values, targets, entropy, kl_beta
    )
    return total, info, logp


MinibatchLoss = Callable[
    [ActorCritic, PPOLoss, Minibatch, Tensor, bool, "float | Tensor | None"],
    tuple[Tensor, dict[str, Tensor], Tensor],
]


def update(
    run: RunSettings,
    loss: PPOLoss,
    estimator: Estimator,
    agent: ActorCritic,
    optimizer: Optimizer,
    buf: Rollout,
    behaviour: RolloutValues,
    norm: Normalizers,
    kl_beta: float | Tensor | None,
    minibatch_loss: MinibatchLoss = minibatch_loss,
) -> dict[str, float]:
    """One PPO update on a rollout: estimate advantages, then epochs of minibatch steps.

    Returns the diagnostics (minibatch means) under their fixed names (`losses/...`).
    `minibatch_loss` is `torch.compile`d with `compile=true` (`compile_hot_paths`).
    """
    # V-trace's target policy is the one being optimised: its log-probs must be fresh each epoch.
    recompute = run.recompute_advantages or "logp_target" in declared_inputs(estimator)
    advantages, returns = estimate_advantages(estimator, run.gamma, buf, behaviour, behaviour)
    b_obs, b_actions = buf.flat(buf.obs), buf.flat(buf.actions)
    b_logp_old, b_values_old = buf.flat(behaviour.logprobs), buf.flat(behaviour.values)
    explained = explained_variance(b_values_old, returns.reshape(-1))
    if norm.value_target is not None:
        norm.value_target.update(returns)  # detail: value-target normalization statistics
    params = [p for group in optimizer.param_groups for p in group["params"]]
    max_norm = run.max_grad_norm if run.max_grad_norm is not None else float("inf")
    diagnostics = DiagnosticMeans()
    epochs_done, early_stopped, skipped_steps = 0, False, 0
    for epoch in range(run.update_epochs):
        if epoch > 0 and recompute:  # detail: fresh advantages from the current networks
            current = evaluate_rollout(agent, buf, norm, fresh=True)
            advantages, returns = estimate_advantages(estimator, run.gamma, buf, behaviour, current)
        b_adv, b_returns = advantages.reshape(-1), returns.reshape(-1)
        if norm.advantage_scope == "batch":
            b_adv = normalize_advantages(b_adv)  # detail: advantage normalization (batch)
        if norm.value_target is not None:  # the critic regresses normalized targets
            targets = norm.value_target.normalize(b_returns)
            old_values = norm.value_target.normalize(b_values_old)
        else:
            targets, old_values = b_returns, b_values_old
        epoch_kl = DiagnosticMeans()
        for idx in torch.randperm(run.batch_size, device=b_adv.device).split(run.minibatch_size):
            adv = b_adv[idx]
            total, info, logp = minibatch_loss(
                agent,
                loss,
                Minibatch(b_obs[idx], b_actions[idx], b_logp_old[idx], adv, old_values[idx]),
                targets[idx],
                norm.advantage_scope == "minibatch",
                kl_beta,
            )
            zero_gradients(params)  # in place: the gradients are views (flat_params)
            total.backward()
            # detail: global gradient-norm clipping; a NaN/inf gradient is caught here, before
            # the optimizer step, so the parameters are never corrupted.
            grad_norm = clip_grad_norm(params, max_norm)
            if grad_norm is None:
                cause = nonfinite_loss_term(
                    {
                        **info,
                        "advantages": adv,
                        "value targets": targets[idx],
                        "log-probabilities": logp,
                    }
                )
                if run.on_nonfinite == "stop":
                    raise NonFiniteError(f"non-finite {cause}")
                zero_gradients(params)  # on_nonfinite=skip: drop this step
                skipped_steps += 1
                continue
            optimizer.step()
            diagnostics.add({**info, "grad_norm": grad_norm})
            epoch_kl.add({"approx_kl": info["approx_kl"]})
        epochs_done += 1
        epoch_approx_kl = epoch_kl.means().get("approx_kl", 0.0)
        if run.early_stop_kl is not None and epoch_approx_kl > run.early_stop_kl:
            early_stopped = True  # detail: stop the epoch loop once the policy moved too far
            break
    out = {f"losses/{k}": v for k, v in diagnostics.means().items()}
    out["losses/explained_variance"] = explained
    out["losses/epochs"] = epochs_done
    out["losses/early_stopped"] = float(early_stopped)
    if skipped_steps:
        out["losses/skipped_steps"] = skipped_steps
    return out


def compile_hot_paths(
    agent: ActorCritic, device: torch.device, cuda_graphs: bool = False
) -> MinibatchLoss:
    """compile=true: return the `torch.compile`d minibatch loss and, on CUDA, compile the policy
    step too (acting, in place on `agent`). Each compiles on its first call (seconds: inductor
    generates and builds C++ or Triton kernels); backward comes fused from AOTAutograd.

    cuda_graphs=true (CUDA; `config` refuses it elsewhere) compiles them with
    mode="reduce-overhead": each compiled function is captured as CUDA graphs, forward and
    backward, and replayed, so a step costs one launch instead of one per kernel. A replay
    reuses the memory of the previous one's outputs: every step is marked as a new one
    (`graph_steps`), and what the loop keeps of an output it copies first (the rollout buffer,
    `DiagnosticMeans`, the actions sent to the envs).

    On a CPU, acting stays eager: a compiled step of a few envs' rows costs more than the eager
    one (CartPole's 4 envs: 58-75 us against 47-67 us here; its guards and wrapper outweigh the
    fused kernels), while the compiled minibatch forward and backward take 0.6x the eager time.
    On CUDA every eager op is a kernel launch, which compiling fuses away. The optimizer step
    stays eager: compiled, it recompiles whenever the annealed learning rate changes."""
    mode = "reduce-overhead" if cuda_graphs else None

    def compiled(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn = torch.compile(fn, mode=mode)
        return graph_steps(fn) if cuda_graphs else fn

    if device.type == "cuda":
        agent.act = compiled(agent.act)  # type: ignore[method-assign]
        agent.act_and_evaluate = compiled(agent.act_and_evaluate)  # type: ignore[method-assign]
    return compiled(minibatch_loss)


def graph_steps(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn`, each call marked as a new step for CUDA graph trees: the outputs of earlier calls
    are dead (the loop copied what it keeps), so the replay may reuse their memory."""

    @functools.wraps(fn)
    def step(*args: Any, **kwargs: Any) -> Any:
        torch.compiler.cudagraph_mark_step_begin()
        return fn(*args, **kwargs)

    return step


def nonfinite_loss_term(terms: dict[str, Tensor]) -> str:
    """The first non-finite quantity of a minibatch (read only when the gradient was)."""
    names = {"policy_loss": "policy loss", "value_loss": "value loss", "entropy": "entropy"}
    for key, value in terms.items():
        if not bool(torch.isfinite(value).all()):
            return names.get(key, key)
    return (
        "gradient (every loss term is finite: the learning rate or the scale of the inputs "
        "may be too large)"
    )


def build_agent(
    settings: Settings,
    choices: dict[str, str],
    norm: Normalizers,
    obs_space: gym.Space,
    action_space: gym.Space,
) -> ActorCritic:
    """The configured network for this env's spaces; a mismatch is a `ConfigError`.

    The network factories raise ValueError when they cannot read the observations or act in the
    action space (a CNN on vector observations, an MLP on images); that is a configuration problem
    and is reported like one, naming the choice to change, before training starts.
    """
    network, env = choices.get("network", "?"), choices.get("env", "?")
    where = f"network={network} with env={env} ({settings.cfg.env.get('id')})"
    if norm.obs is not None and observation_dtype(obs_space) == torch.uint8:
        raise ConfigError(
            [
                f"normalization.observation=true with uint8 image observations "
                f"{obs_space} ({where}): pixels are scaled by 1/255 in the network; "
                "use normalization=adv"
            ]
        )
    try:
        agent = build(settings.cfg.network, observation_space=obs_space, action_space=action_space)
    except ValueError as err:
        raise ConfigError([f"{where}: {err}"]) from err
    agent.autocast_dtype = AMP_DTYPES[settings.run.amp]
    return agent


def train(
    settings: Settings,
    run_dir: Path,
    choices: dict[str, str],
    run_name: str,
    figures: dict[str, Any] | None = None,
    stop: GracefulStop | None = None,
) -> dict[str, Any]:
    """Train PPO as configured; write metrics.jsonl and checkpoint.pt to `run_dir`.

    Fills `figures` (the run's summary: global step, final return, evaluation, ...) as it goes,
    so a failed or interrupted run still reports the step it reached, and returns it. With
    `stop`, a stop signal ends the run after the current update, with a checkpoint.
    """
    figures = {} if figures is None else figures
    run, cfg = settings.run, settings.cfg
    device = resolve_device(run.device)
    seed_everything(run.seed)
    config = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(config, dict)
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = run_dir / CHECKPOINT
    remove_stale_temp_files(run_dir)  # a kill mid-write leaves one; the previous file is whole
    resumed = None
    if run.resume and checkpoint_path.exists():  # a requeued job continues where it stopped
        resumed = load_checkpoint(checkpoint_path, map_location=device)
        check_resumable(resumed, config, checkpoint_path)
    elif not run.resume and holds_a_run(run_dir):
        raise ConfigError(
            [
                f"resume=false: {run_dir} already holds a run (metrics.jsonl or "
                "checkpoint.pt); start it in a new dir (hydra.run.dir=...), or delete "
                "those files to start over"
            ]
        )
    loss: PPOLoss = build(cfg.loss)
    estimator: Estimator = build(cfg.advantage)

    envs: VectorEnv = build(cfg.env, num_envs=run.num_envs)
    obs_space, action_space = envs.single_observation_space, envs.single_action_space
    obs_shape = tuple(obs_space.shape or ())
    threads = intra_op_threads(run.torch_threads, image_observations=len(obs_shape) == 3)
    if threads is not None:
        torch.set_num_threads(threads)
    keep_freed_memory()  # a CNN's activations reuse their pages
    try:
        norm: Normalizers = build(
            cfg.normalization,
            obs_shape=obs_shape,
            num_envs=run.num_envs,
            gamma=run.gamma,
            device=device,
        )
        agent = build_agent(settings, choices, norm, obs_space, action_space).to(device)
        # one flat parameter: zeroing and clipping are one op each, Adam a few (flat_params, optim)
        optimizer: Optimizer = build(cfg.optim, params=[flatten_parameters(agent)])
    except ConfigError:
        envs.close()
        raise
    step_loss = minibatch_loss
    if run.compiles:
        step_loss = compile_hot_paths(agent, device, run.cuda_graphs)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    kl_beta = loss.initial_kl_beta  # the KL-penalty coefficient is trainer state
    recent_returns: list[float] = []
    global_step, first_update = 0, 1
    if resumed is not None:
        agent.load_state_dict(resumed["model"])
        optimizer.load_state_dict(flat_state(resumed["optimizer"], agent))
        norm.load_state_dict(resumed["normalizers"])
        set_rng_state(resumed["rng"])
        kl_beta, recent_returns = resumed["kl_beta"], resumed["recent_returns"]
        global_step, first_update = resumed["global_step"], resumed["update"] + 1
        figures["resumed_from_step"] = global_step
        log.info(
            "resuming %s from its checkpoint at step %d (update %d)",
            run_dir,
            global_step,
            first_update - 1,
        )
    buf = Rollout.allocate(
        run.num_steps,
        run.num_envs,
        obs_space,
        action_space,
        device,
        record_while_acting=agent.shared,
    )
    raw_obs = (
        torch.zeros(buf.obs.shape, dtype=torch.float32, device=device)
        if norm.obs is not None
        else None
    )
    wandb_run_id = resumed["wandb_run_id"] if resumed is not None else run_id(run_dir)

    def save(update_index: int) -> None:
        save_checkpoint(
            checkpoint_path,
            training_state(
                config=config,
                model=agent.state_dict(),
                optimizer_state=per_parameter_state(optimizer.state_dict(), agent),
                normalizers=norm.state_dict(),
                global_step=global_step,
                update=update_index,
                kl_beta=kl_beta,
                recent_returns=recent_returns,
                observation_space=obs_space,
                action_space=action_space,
                wandb_run_id=wandb_run_id,
            ),
        )

    def evaluate() -> list[float]:
        """Deterministic episodes on separate envs, logged at the current step."""
        spaces = (obs_space, action_space)
        return evaluate_and_log(
            settings, agent, norm, device, spaces, tracker, metrics, run_dir, global_step
        )

    # The run dir's history continues from the checkpoint: rows written after it are cut.
    metrics = MetricsFile(
        run_dir / "metrics.jsonl", keep_until_step=global_step if resumed is not None else None
    )
    tracker: Tracker = build(
        cfg.logger,
        run_dir=run_dir,
        config=config,
        choices=choices,
        run_name=run_name,
        run_id=wandb_run_id,
    )
    progress = Progress(run.num_updates * run.batch_size)  # whole batches of total_timesteps
    exit_code = 1
    figures.update(reward_threshold=envs.reward_threshold, global_step=global_step)
    last_metrics: dict[str, float] = {}
    skipped_updates = 0
    try:
        obs_np = envs.reset(seed=run.seed + first_update - 1)  # fresh episodes after a resume
        start = time.perf_counter()
        start_step = global_step
        eval_seconds = 0.0  # time in periodic evaluations, left out of charts/SPS
        for update_index in range(first_update, run.num_updates + 1):
            if run.anneal_lr:  # detail: learning rate decays linearly to 0
                for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
                    group["lr"] = annealed_lr(base, update_index, run.num_updates)

            obs_np, ep_returns, ep_lengths, _ = collect_rollout(
                envs, agent, buf, obs_np, norm, raw_obs, run.bootstrap_truncations
            )
            where = (
                f"update {update_index} (global step {global_step}..."
                f"{global_step + run.batch_size}); the last good checkpoint is "
                f"{checkpoint_path}"
            )
            global_step += run.batch_size
            bad = nonfinite_env_data(buf, raw_obs)  # detail: check what the env handed over
            if bad is not None and run.on_nonfinite == "stop":
                raise NonFiniteError(f"non-finite {bad} from the environment in {where}")
            if bad is None:
                if norm.obs is not None and raw_obs is not None:
                    norm.obs.update(raw_obs.reshape(-1, *obs_shape))  # stats for the next rollout
                behaviour = evaluate_rollout(agent, buf, norm)  # pi_old and V_old of the rollout
                try:
                    diagnostics = update(
                        run,
                        loss,
                        estimator,
                        agent,
                        optimizer,
                        buf,
                        behaviour,
                        norm,
                        # compiled: a tensor, so a new beta does not recompile the loss
                        torch.tensor(kl_beta, device=device)
                        if run.compiles and kl_beta is not None
                        else kl_beta,
                        step_loss,
                    )
                except NonFiniteError as err:
                    raise NonFiniteError(f"{err} in {where}") from None
                measured_kl = diagnostics.get("losses/approx_kl")
                if loss.kl_coef is not None and kl_beta is not None and measured_kl is not None:
                    kl_beta = loss.kl_coef.next(kl_beta, measured_kl)  # detail: adaptive KL
            else:  # on_nonfinite=skip: no gradient step on this rollout
                skipped_updates += 1
                diagnostics = {}

            elapsed = time.perf_counter() - start
            recent_returns = (recent_returns + ep_returns)[-RECENT_EPISODES:]
            record = update_record(
                sps=(global_step - start_step) / (elapsed - eval_seconds),
                learning_rate=optimizer.param_groups[0]["lr"],
                diagnostics=diagnostics,
                skipped_updates=skipped_updates,
                kl_beta=kl_beta,
                episodes=(ep_returns, ep_lengths),
                recent_returns=recent_returns,
            )
            metrics.write({"global_step": global_step, "time": round(elapsed, 3), **record})
            tracker.log(record, step=global_step)
            last_metrics = record
            figures["global_step"] = global_step
            progress.update(global_step, recent_returns)

            periodic_eval = run.eval_interval and update_index % run.eval_interval == 0
            if periodic_eval and update_index < run.num_updates:  # the final one follows below
                eval_start = time.perf_counter()
                evaluate()
                eval_seconds += time.perf_counter() - eval_start

            stopping = stop is not None and stop.requested
            if stopping or (
                run.checkpoint_interval and update_index % run.checkpoint_interval == 0
            ):
                save(update_index)
            if stopping and stop is not None:
                figures["stopped_by"] = stop.signal_name
                stop.raise_if_requested()  # after the checkpoint: the requeue resumes from here

        save(run.num_updates)
        figures["train_time_s"] = round(time.perf_counter() - start, 3)
        if run.eval_episodes:
            eval_returns = evaluate()
            figures["eval_return"] = float(np.mean(eval_returns)) if eval_returns else None
            figures["eval_returns"] = eval_returns
        exit_code = 0
    finally:
        progress.close()
        metrics.close()
        envs.close()
        final_figures(figures, recent_returns, last_metrics, skipped_updates)
        tracker.finish({k: v for k, v in figures.items() if k != "final_metrics"}, exit_code)
    return figures


def update_record(
    *,
    sps: float,
    learning_rate: float,
    diagnostics: dict[str, float],
    skipped_updates: int,
    kl_beta: float | None,
    episodes: tuple[list[float], list[int]],
    recent_returns: list[float],
) -> dict[str, float]:
    """One update's row of metrics.jsonl (and W&B): speed, learning rate, loss diagnostics, and
    the episodes that finished in its rollout."""
    record: dict[str, float] = {
        "charts/SPS": sps,
        "charts/learning_rate": learning_rate,
        **diagnostics,
    }
    if skipped_updates:
        record["charts/skipped_updates"] = skipped_updates
    if kl_beta is not None:
        record["losses/kl_beta"] = kl_beta
    returns, lengths = episodes
    if returns:
        record["charts/episodic_return"] = float(np.mean(returns))
        record["charts/episodic_length"] = float(np.mean(lengths))
        record["charts/episodes"] = len(returns)
        record["charts/recent_return"] = float(np.mean(recent_returns))  # last 10
    return record


def final_figures(
    figures: dict[str, Any],
    recent_returns: list[float],
    last_metrics: dict[str, float],
    skipped_updates: int,
) -> None:
    """The run's closing figures: final return (last 10 episodes), solved, last metrics."""
    final_return = float(np.mean(recent_returns)) if recent_returns else None
    threshold = figures.get("reward_threshold")
    figures.update(
        final_return=final_return,
        final_metrics=last_metrics,
        solved=None if final_return is None or threshold is None else final_return >= threshold,
    )
    if skipped_updates:
        figures["skipped_updates"] = skipped_updates


def holds_a_run(run_dir: Path) -> bool:
    """Whether `run_dir` already has a run's history or checkpoint in it."""
    metrics = run_dir / "metrics.jsonl"
    return (run_dir / CHECKPOINT).exists() or (metrics.exists() and metrics.stat().st_size > 0)


def nonfinite_env_data(buf: Rollout, raw_obs: Tensor | None) -> str | None:
    """Which of the rollout's rewards or observations (as the env gave them) is not finite."""
    if not np.isfinite(buf.host.rewards).all():
        return "reward"
    obs = raw_obs if raw_obs is not None else buf.obs
    if obs.is_floating_point() and not bool(torch.isfinite(obs).all()):
        return "observation"
    return None
