"""Sweep-level tools: the summary table of a sweep dir and re-running its failed jobs.

    python -m ppo_lab.sweep summarize <sweep dir>      # sweep_summary.md + .csv in the sweep dir
    python -m ppo_lab.sweep rerun-failed <sweep dir>   # re-run each unfinished job in its own dir

The summary is also written by `SweepSummaryCallback` when a multirun ends without failures.
"""
