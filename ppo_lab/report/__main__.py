"""`python -m ppo_lab.report <sweep dir> [<sweep dir> ...]`: write the sweep's comparison report."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ppo_lab.report.build import CURVE_STATISTICS, DEFAULT_METRIC, build_report
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
