"""Golden values of every statistic of the report on fixed inputs, and equal weight per env.

The expected numbers were computed once with rliable's formulas (rliable/metrics.py and
library.py: `aggregate_mean`, `aggregate_median`, `aggregate_iqm` = scipy's `trim_mean(scores,
0.25, axis=None)`, `aggregate_optimality_gap`, `probability_of_improvement` = Mann-Whitney U /
(n m), `score_distributions` = mean(scores > tau), and `StratifiedBootstrap` with arch's
percentile interval `np.percentile(results, [2.5, 97.5], axis=0)`), re-implemented verbatim in a
scratch script with scipy, since rliable itself is not a dependency. They are written here as
literals: these tests never call scipy or rliable.
"""

from __future__ import annotations

import numpy as np
import pytest

from ppo_lab.report import stats

# rliable's layout: runs x tasks (5 runs of 3 tasks); ppo_lab's: one array of runs per task.
X = np.array(
    [
        [0.12, 0.85, 1.30],
        [0.40, 0.55, 0.95],
        [0.33, 0.91, 1.10],
        [0.05, 0.70, 1.45],
        [0.27, 0.62, 0.80],
    ]
)
Y = np.array(
    [
        [0.10, 0.85, 1.00],
        [0.35, 0.40, 1.20],
        [0.20, 0.60, 0.90],
        [0.30, 0.75, 1.05],
    ]
)
X_STRATA = [X[:, j] for j in range(X.shape[1])]
Y_STRATA = [Y[:, j] for j in range(Y.shape[1])]
TAUS = np.array([0.0, 0.25, 0.5, 0.75, 1.0, 1.25])

# rliable on X (and Y):
GOLDEN = {
    "mean": 0.6933333333333334,  # aggregate_mean
    "median": 0.726,  # aggregate_median
    "IQM": 0.6788888888888889,  # aggregate_iqm: 15 values, 3 cut from each end
    "optimality gap": 0.3633333333333333,  # aggregate_optimality_gap(gamma=1)
}
GOLDEN_GAP_AT_1_2 = 0.53  # aggregate_optimality_gap(X, gamma=1.2)
GOLDEN_POI_XY, GOLDEN_POI_YX = 0.575, 0.425  # probability_of_improvement
GOLDEN_PROFILE = [1.0, 0.8666666666666667, 0.6666666666666666, 0.4666666666666667, 0.2, 0.1333333]
# rliable's 95% percentile intervals on X: StratifiedBootstrap, 50,000 reps, np.random.seed(0)
RLIABLE_CI = {
    "mean": (0.606, 0.78),
    "median": (0.608, 0.844),
    "IQM": (0.6011111111111112, 0.7733333333333333),
    "optimality gap": (0.30533333333333335, 0.42333333333333345),
}
# ppo_lab's intervals on X with seed 0 and 2,000 reps (its own random stream: numpy default_rng)
OURS_CI_SEED_0 = {
    "mean": (0.6073333333333334, 0.7793333333333333),
    "median": (0.608, 0.844),
    "IQM": (0.6055277777777778, 0.7722499999999998),
    "optimality gap": (0.30600000000000005, 0.4213499999999999),
}
OURS_POI_CI_SEED_0 = (0.35000000000000003, 0.7833333333333333)

ESTIMATORS = {
    "mean": stats.mean_score,
    "median": stats.median_score,
    "IQM": stats.iqm_score,
    "optimality gap": stats.optimality_gap,
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_aggregates_match_rliable_golden_values(name):
    assert float(ESTIMATORS[name](X_STRATA)) == pytest.approx(GOLDEN[name], abs=1e-12)


def test_single_task_iqm_and_gap_golden_values():
    assert float(stats.iqm(X[:, 0])) == pytest.approx(0.24, abs=1e-12)  # trim_mean(.., 0.25)
    assert float(stats.iqm(np.arange(1.0, 9.0))) == pytest.approx(4.5)
    assert float(stats.optimality_gap(X_STRATA, gamma=1.2)) == pytest.approx(GOLDEN_GAP_AT_1_2)


def test_probability_of_improvement_golden_values():
    assert float(stats.probability_of_improvement(X_STRATA, Y_STRATA)) == pytest.approx(
        GOLDEN_POI_XY, abs=1e-12
    )
    assert float(stats.probability_of_improvement(Y_STRATA, X_STRATA)) == pytest.approx(
        GOLDEN_POI_YX, abs=1e-12
    )
    # rliable: identical scores on a task count 0.5
    same = [np.array([1.0, 2.0]), np.array([3.0, 3.0])]
    assert float(stats.probability_of_improvement(same, same)) == 0.5


def test_performance_profile_golden_values():
    profile = stats.performance_profile(X_STRATA, TAUS)
    assert profile.tolist() == pytest.approx(GOLDEN_PROFILE, abs=1e-7)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_stratified_bootstrap_ci_with_a_fixed_seed(name):
    """Fixed seed: the same interval every time (golden), and within Monte Carlo error of
    rliable's interval (its StratifiedBootstrap draws from another random stream)."""
    est = stats.stratified_bootstrap_ci(ESTIMATORS[name], X_STRATA, reps=2000, seed=0)
    assert float(est.point) == pytest.approx(GOLDEN[name], abs=1e-12)
    assert (float(est.low), float(est.high)) == pytest.approx(OURS_CI_SEED_0[name], abs=1e-12)
    assert (float(est.low), float(est.high)) == pytest.approx(RLIABLE_CI[name], abs=0.01)
    again = stats.stratified_bootstrap_ci(ESTIMATORS[name], X_STRATA, reps=2000, seed=0)
    assert float(again.low) == float(est.low) and float(again.high) == float(est.high)


def test_probability_of_improvement_ci_with_a_fixed_seed():
    est = stats.stratified_bootstrap_ci(
        stats.probability_of_improvement, X_STRATA, Y_STRATA, reps=2000, seed=0
    )
    assert float(est.point) == pytest.approx(GOLDEN_POI_XY)
    assert (float(est.low), float(est.high)) == pytest.approx(OURS_POI_CI_SEED_0, abs=1e-12)


def test_bootstrap_interval_of_two_runs_is_their_range():
    """The exact bootstrap distribution of the mean of 2 runs puts 1/4 on each run: its 2.5th and
    97.5th percentiles are the two runs, which is why an n=2 interval covers only ~50%."""
    est = stats.stratified_bootstrap_ci(stats.mean_score, [np.array([3.0, 7.0])], reps=4000)
    assert (float(est.low), float(est.high)) == (3.0, 7.0)


# --------------------------------------------------------------------------- equal weight per env

# Three envs with 2, 4 and 1 runs. Per-env means: 0.1, 0.25, 1.2.
UNEVEN = [np.array([0.0, 0.2]), np.array([0.1, 0.2, 0.3, 0.4]), np.array([1.2])]


def test_every_aggregate_weighs_envs_equally_with_uneven_run_counts():
    # mean of the per-env means (pooling the 7 runs would give 2.4 / 7 = 0.343)
    assert float(stats.mean_score(UNEVEN)) == pytest.approx((0.1 + 0.25 + 1.2) / 3)
    # median of the per-env means
    assert float(stats.median_score(UNEVEN)) == pytest.approx(0.25)
    # optimality gap: capped at 1 per run, per-env means 0.1, 0.25, 1.0
    assert float(stats.optimality_gap(UNEVEN)) == pytest.approx(1 - (0.1 + 0.25 + 1.0) / 3)
    # IQM: each run weighs lcm(2, 4, 1) / n = 2, 1, 4 units (12 in all, 4 per env); 3 units cut
    # from each end: 0.0 (2) and 0.1 (1) below, 3 of the 4 units of 1.2 above; left: 0.2 (2),
    # 0.2, 0.3, 0.4 and one unit of 1.2 -> (0.4 + 0.2 + 0.3 + 0.4 + 1.2) / 6. Pooling the 7 runs
    # as equals (rliable's formula on ragged data) would give mean(0.1, 0.2, 0.2, 0.3, 0.4) = 0.24.
    assert float(stats.iqm_score(UNEVEN)) == pytest.approx(2.5 / 6)
    # the same as repeating every env's runs up to 4 and taking rliable's IQM of the 12 values
    repeated = np.concatenate([np.repeat(s, 4 // len(s)) for s in UNEVEN])
    assert float(stats.iqm(repeated)) == pytest.approx(2.5 / 6)
    # performance profile at tau = 0.15: 1/2, 3/4 and 1/1 of each env's runs, averaged
    profile = stats.performance_profile(UNEVEN, np.array([0.15]))
    assert profile.tolist() == pytest.approx([(0.5 + 0.75 + 1.0) / 3])
    # probability of improvement: per env 0.5, 0.5, 1.0, averaged
    other = [np.array([0.1, 0.1]), np.full(4, 0.25), np.array([1.0])]
    assert float(stats.probability_of_improvement(UNEVEN, other)) == pytest.approx(2 / 3)


def test_weighted_iqm_is_rliables_with_even_counts_and_works_in_a_bootstrap():
    rng = np.random.default_rng(3)
    even = [rng.normal(size=5) for _ in range(3)]
    assert float(stats.iqm_score(even)) == pytest.approx(float(stats.iqm(np.concatenate(even))))
    # leading axes (bootstrap resamples, curve steps) are kept
    boot = stats.resample(UNEVEN, 7, rng)
    values = stats.iqm_score(boot)
    assert values.shape == (7,)
    for i in range(7):
        assert values[i] == pytest.approx(float(stats.iqm_score([b[i] for b in boot])))
    est = stats.stratified_bootstrap_ci(stats.iqm_score, [UNEVEN[0], UNEVEN[1]], reps=200)
    assert est.low <= est.point <= est.high


def test_iqm_trims_only_from_four_runs():
    assert not stats.iqm_trims([3]) and stats.iqm_trims([4])
    assert not stats.iqm_trims([1, 1, 1]) and stats.iqm_trims([3, 3])
    assert stats.iqm_trims([1, 2])  # lcm 2 x 2 envs = 4 units: one cut from each end
    assert float(stats.iqm_score([np.array([1.0, 2.0, 9.0])])) == pytest.approx(4.0)  # the mean


# --------------------------------------------------------------------------- coverage, smoothing


def test_the_coverage_table_matches_a_quick_simulation():
    """The embedded coverage of the nominal 95% interval of the mean, re-simulated small."""
    rng = np.random.default_rng(11)
    for n in (3, 5):
        data = rng.normal(size=(1500, n))
        index = rng.integers(0, n, size=(1500, 500, n))
        boot = np.take_along_axis(data[:, None, :], index, axis=-1).mean(axis=-1)
        low, high = np.percentile(boot, [2.5, 97.5], axis=1)
        covered = float(((low <= 0) & (high >= 0)).mean())
        assert covered == pytest.approx(stats.real_coverage(n), abs=0.04)
    assert stats.real_coverage(1) is None and stats.real_coverage(50) is None
    assert stats.real_coverage(12) == stats.BOOTSTRAP_COVERAGE[10]["mean"]
    assert [stats.real_coverage(n) for n in (3, 5, 10)] == [0.742, 0.832, 0.902]


def test_smoothing_is_a_centred_moving_average_over_env_steps():
    steps = np.array([0, 100, 200, 300, 400])
    values = np.array([0.0, 10.0, 20.0, 30.0, 100.0])
    # window 200: [s - 100, s + 100] -> 3 points inside, 2 at the ends
    assert stats.smooth(steps, values, 200).tolist() == pytest.approx([5.0, 10.0, 20.0, 50.0, 65.0])
    assert stats.smooth(steps, values, 0).tolist() == values.tolist()
    line = 2.0 * steps + 1.0
    assert stats.smooth(steps, line, 200)[1:-1].tolist() == pytest.approx(line[1:-1].tolist())
