"""`python -m ppo_lab.sweep {summarize,rerun-failed} <sweep dir>`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ppo_lab.sweep.rerun import rerun_failed
from ppo_lab.sweep.summary import summarize, write_table


def _sweep_dir(text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path}: no such directory")
    return path


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ppo_lab.sweep", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    summary = commands.add_parser(
        "summarize", help="write sweep_summary.md and sweep_summary.csv into the sweep dir"
    )
    summary.add_argument("sweep_dir", type=_sweep_dir)
    rerun = commands.add_parser(
        "rerun-failed",
        help="re-run each job that did not finish, with its own overrides, into its own job dir",
    )
    rerun.add_argument("sweep_dir", type=_sweep_dir)
    rerun.add_argument("--dry-run", action="store_true", help="print the commands only")
    rerun.add_argument("--jobs", type=int, default=None, help="re-runs at once (default: cores)")
    rerun.add_argument(
        "--status",
        action="append",
        metavar="STATUS",
        help="only jobs with this status (failed, interrupted, lost, 'never started'); "
        "repeatable; default: all but finished (invalid_config jobs are always skipped)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "summarize":
        table = summarize(args.sweep_dir)
        if not table.runs:
            print(
                f"{args.sweep_dir}: no job dir (with .hydra/overrides.yaml) under it",
                file=sys.stderr,
            )
            return 2
        md, csv_path = write_table(table)
        print(md.read_text(), end="")
        print(f"written: {md}, {csv_path}")
        return 0
    still_failing = rerun_failed(
        args.sweep_dir, dry_run=args.dry_run, statuses=args.status, jobs_at_once=args.jobs
    )
    return 1 if still_failing else 0


if __name__ == "__main__":
    sys.exit(main())
