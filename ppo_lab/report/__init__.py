"""The comparison report of a finished sweep: `python -m ppo_lab.report <sweep dir> [...]`.

Groups runs by what the sweep varied (`seed` is the replicate axis), and writes `report.md` with
PNG figures beside it and a self-contained `report.html`: learning curves with bootstrap bands,
final-performance tables (mean, median, IQM, optimality gap with stratified-bootstrap CIs),
probability of improvement, performance profiles, the config differences and the runs left out.
Statistics after Agarwal et al. 2021 ("Deep RL at the Edge of the Statistical Precipice").
"""

from ppo_lab.report.build import DEFAULT_METRIC, Report, build_report

__all__ = ["DEFAULT_METRIC", "Report", "build_report"]
