"""`python -m ppo_lab.report <sweep dir> [<sweep dir> ...]`: write the sweep's comparison report."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ppo_lab.report.build import (
    CURVE_STATISTICS,
    DEFAULT_EVAL_LAST,
    DEFAULT_METRIC,
    SCORES,
    build_report,
)
from ppo_lab.runs import SweepError


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ppo_lab.report",
        description="Compare the variants of a Hydra sweep (multirun/<date>/<time>): learning "
        "curves, IQM and friends with bootstrap CIs, probability of improvement. Writes "
        "report.md, report.html and PNGs into the first sweep dir (or --out).",
    )
    parser.add_argument("sweep_dirs", nargs="+", type=Path, metavar="SWEEP_DIR")
    parser.add_argument(
        "--metric",
        default=DEFAULT_METRIC,
        help=f"metric of metrics.jsonl to compare (default: {DEFAULT_METRIC})",
    )
    parser.add_argument(
        "--score",
        choices=SCORES,
        default="eval",
        help="final score per run: eval = mean of its last --eval-last deterministic "
        "evaluations (eval/episodic_return; the training return when no run of the sweep "
        "evaluated), training = mean return of its last 10 training episodes (default: eval)",
    )
    parser.add_argument(
        "--eval-last",
        type=_positive,
        default=DEFAULT_EVAL_LAST,
        metavar="K",
        help=f"evaluations averaged into the eval score (default: {DEFAULT_EVAL_LAST})",
    )
    parser.add_argument(
        "--smooth",
        type=_non_negative,
        metavar="STEPS",
        help="learning curves: moving average over this many env steps (default: about 5%% of "
        "the longest run, rounded; 0: no smoothing)",
    )
    parser.add_argument(
        "--ceiling",
        action="append",
        default=[],
        type=_ceiling,
        metavar="ENV=RETURN",
        help="the highest return of an env (repeatable), beside the known ones (CartPole-v1=500): "
        "variants whose every run reaches it are marked as saturated",
    )
    parser.add_argument("--out", type=Path, help="report directory (default: first sweep dir)")
    parser.add_argument(
        "--curve-stat",
        choices=sorted(CURVE_STATISTICS),
        default="mean",
        help="statistic over seeds for learning curves (default: mean)",
    )
    parser.add_argument(
        "--reps", type=int, default=2000, help="bootstrap resamples per interval (default: 2000)"
    )
    parser.add_argument("--seed", type=int, default=0, help="bootstrap random seed (default: 0)")
    parser.add_argument(
        "--wandb",
        action="store_true",
        help="also make a W&B Report (online), or print the `wandb sync` command",
    )
    parser.add_argument("--wandb-entity", help="W&B entity (default: the runs' logger.entity)")
    parser.add_argument("--wandb-project", help="W&B project (default: the runs' logger.project)")
    return parser.parse_args(argv)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(float(text))
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _ceiling(text: str) -> tuple[str, float]:
    env, sep, value = text.rpartition("=")
    if sep and env:
        try:
            return env, float(value)
        except ValueError:
            pass
    raise argparse.ArgumentTypeError(f"expected ENV=RETURN (e.g. Acrobot-v1=0), not {text!r}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = build_report(
            args.sweep_dirs,
            out=args.out,
            metric=args.metric,
            reps=args.reps,
            curve_stat=args.curve_stat,
            seed=args.seed,
            score=args.score,
            eval_last=args.eval_last,
            smooth=args.smooth,
            ceilings=dict(args.ceiling),
        )
    except SweepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"Report written to {report.markdown}")
    print(f"  self-contained HTML: {report.html}")
    if args.wandb:
        from ppo_lab.report.wandb_report import publish

        return publish(report, entity=args.wandb_entity, project=args.wandb_project)
    return 0


if __name__ == "__main__":
    sys.exit(main())
