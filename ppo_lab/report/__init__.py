"""The comparison report of a finished sweep: `python -m ppo_lab.report <sweep dir> [...]`.

Groups runs by what the sweep varied (`seed` is the replicate axis; a multi-seed trial's
`seed_<s>/` dirs are its runs, earlier attempts kept by rerun-failed are skipped), and writes
`report.md` with PNG figures beside it and a self-contained `report.html`: smoothed learning
curves with bootstrap bands, final-performance tables (mean, median, IQM, optimality gap with
stratified-bootstrap CIs, every run's own score), probability of improvement, performance
profiles, the config differences and the runs left out.

A run's final score is its deterministic evaluation (the mean of its last 3 `eval/episodic_return`
rows; `--score training`: its last 10 training episodes; the training score when no run of the
sweep evaluated, which the report says). Every env weighs the same in every aggregate. With fewer
than 10 runs per variant the report gives the intervals' real coverage; an IQM over fewer than 4
runs is marked as the mean; variants at an env's ceiling are marked, not given zero-width CIs.
Statistics after Agarwal et al. 2021 ("Deep RL at the Edge of the Statistical Precipice").
"""

from ppo_lab.report.build import DEFAULT_METRIC, Report, build_report

__all__ = ["DEFAULT_METRIC", "Report", "build_report"]
