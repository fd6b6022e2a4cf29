"""Robust trends and crossing predictions on synthetic degradations with known slopes and noise."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diagnostics.trend import (
    TrendWindow,
    format_duration,
    predict_crossing,
    prediction_message,
    theil_sen,
)

DAY = 86400.0
T0 = 1_800_000_000.0


def test_exact_line_gives_exact_slope_and_crossing() -> None:
    t = T0 + np.arange(0, 10 * DAY, 3600.0)
    slope = 0.3 / DAY  # mm/s per day -> per s
    v = 2.0 + slope * (t - T0)
    fit = theil_sen(t, v)
    assert fit.slope_per_s == pytest.approx(slope, rel=1e-9)
    assert fit.slope_low_per_s == pytest.approx(slope, rel=1e-9)
    assert fit.slope_high_per_s == pytest.approx(slope, rel=1e-9)
    p = predict_crossing(t, v, 7.1)
    assert p is not None
    truth = T0 + (7.1 - 2.0) / slope
    assert p.crossing_ts_s == pytest.approx(truth, abs=1.0)
    assert p.earliest_ts_s == pytest.approx(truth, abs=1.0)
    assert p.latest_ts_s == pytest.approx(truth, abs=1.0)
    assert p.time_to_crossing_s == pytest.approx(truth - t[-1], abs=1.0)


def noisy_degradation(seed: int, n: int = 240, sigma: float = 0.25) -> tuple[np.ndarray, np.ndarray, float]:
    """10 days of hourly-ish RMS velocity rising 0.3 mm/s per day from 2 mm/s, Gaussian noise."""
    rng = np.random.default_rng(seed)
    t = T0 + np.sort(rng.uniform(0, 10 * DAY, n))
    slope = 0.3 / DAY
    v = 2.0 + slope * (t - T0) + rng.normal(0, sigma, n)
    return t, v, T0 + (7.1 - 2.0) / slope


def test_band_covers_the_true_crossing_at_about_the_nominal_rate() -> None:
    covered = 0
    trials = 200
    for seed in range(trials):
        t, v, truth = noisy_degradation(seed)
        p = predict_crossing(t, v, 7.1, now_s=T0 + 10 * DAY)
        assert p is not None
        assert p.latest_ts_s is not None
        # the point estimate always lies inside its own band
        assert p.earliest_ts_s <= p.crossing_ts_s <= p.latest_ts_s
        covered += p.earliest_ts_s <= truth <= p.latest_ts_s
    # Sen's interval at 95 %; allow for sampling of 200 trials (binomial sd ~1.5 %)
    assert covered / trials >= 0.88, covered


def test_point_estimate_is_close_on_average() -> None:
    errors = []
    for seed in range(50):
        t, v, truth = noisy_degradation(seed)
        p = predict_crossing(t, v, 7.1, now_s=T0 + 10 * DAY)
        assert p is not None
        errors.append((p.crossing_ts_s - truth) / DAY)
    assert abs(float(np.mean(errors))) < 0.3  # days, unbiased
    assert float(np.std(errors)) < 1.5


def test_outliers_do_not_move_the_slope() -> None:
    rng = np.random.default_rng(3)
    t = T0 + np.arange(0, 5 * DAY, 1800.0)
    slope = 1.0 / DAY
    v = 40.0 + slope * (t - T0) + rng.normal(0, 0.1, t.size)
    bad = rng.choice(t.size, size=t.size // 5, replace=False)
    v[bad] += rng.choice([-30.0, 50.0], size=bad.size)  # 20 % gross outliers (spikes, dropouts)
    fit = theil_sen(t, v)
    assert fit.slope_per_s == pytest.approx(slope, rel=0.05)
    ols = np.polyfit(t - T0, v, 1)[0]
    assert abs(ols - slope) > 3 * abs(fit.slope_per_s - slope)  # least squares is pulled, Theil–Sen is not


def test_no_prediction_when_flat_or_heading_away_or_past() -> None:
    t = T0 + np.arange(100.0)
    assert predict_crossing(t, np.full(100, 3.0), 7.1) is None
    assert predict_crossing(t, 5.0 - 0.01 * np.arange(100), 7.1) is None  # falling, limit above
    assert predict_crossing(t, 8.0 + 0.01 * np.arange(100), 7.1) is None  # already past
    p = predict_crossing(t, 5.0 - 0.01 * np.arange(100), 3.0)  # falling toward a low limit
    assert p is not None and p.direction == -1
    assert p.time_to_crossing_s == pytest.approx((4.01 - 3.0) / 0.01, rel=1e-6)


def test_unbounded_band_when_the_slope_interval_includes_zero() -> None:
    rng = np.random.default_rng(5)
    t = T0 + np.arange(30.0) * 60
    v = 2.0 + 1e-5 * (t - T0) + rng.normal(0, 0.5, 30)
    p = predict_crossing(t, v, 7.1)
    if p is not None:  # a weak trend: crossing may be forecast, but "never" cannot be excluded
        assert p.latest_ts_s is None
        assert "possibly never" in prediction_message("x", p, "mm/s")


def test_bounded_pairs_for_long_series_are_deterministic() -> None:
    t = T0 + np.arange(5000.0)
    v = 0.001 * np.arange(5000.0) + np.random.default_rng(1).normal(0, 0.05, 5000)
    a = theil_sen(t, v, max_pairs=5000)
    b = theil_sen(t, v, max_pairs=5000)
    assert a == b
    assert a.n_pairs <= 5000
    assert a.slope_per_s == pytest.approx(0.001, rel=0.02)


def test_bad_samples_are_dropped_and_bad_input_is_named() -> None:
    t = T0 + np.arange(10.0)
    v = np.arange(10.0)
    v[3] = np.nan
    assert theil_sen(t, v).slope_per_s == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 5 finite samples"):
        theil_sen(t[:4], v[:4])
    with pytest.raises(ValueError, match="equal length"):
        theil_sen(t, v[:5])
    with pytest.raises(ValueError, match="one timestamp"):
        theil_sen(np.full(10, T0), v)
    with pytest.raises(ValueError, match="confidence"):
        theil_sen(t, v, confidence=1.5)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "~0 seconds"), (1, "~1 second"), (45, "~45 seconds"), (600, "~10 minutes"), (5 * 3600, "~5 hours"),
     (9 * DAY, "~9 days"), (1.2 * DAY, "~29 hours"), (2 * DAY, "~2 days")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_message_reads_like_the_issue() -> None:
    t = T0 + np.arange(0, 10 * DAY, 3600.0)
    # rising 0.3 mm/s per day, reaching 7.1 mm/s nine days after the last sample
    v = 7.1 - (0.3 / DAY) * (t[-1] + 9 * DAY - t)
    p = predict_crossing(t, v, 7.1)
    assert p is not None
    assert prediction_message("bearing velocity RMS", p, "mm/s", "zone D") == (
        "bearing velocity RMS will reach 7.1 mm/s (zone D) in ~9 days"
    )


def test_trend_window_buckets_slide_and_persist() -> None:
    w = TrendWindow(window_s=DAY, bucket_s=3600.0)
    slope = 2.0 / DAY
    for k in range(3 * 86400 // 60):
        ts = T0 + k * 60.0
        w.add(ts, 10.0 + slope * (ts - T0))
    assert len(w) <= 25  # one day of hourly buckets (+ the one being filled)
    fit = w.fit()
    assert fit is not None and fit.slope_per_s == pytest.approx(slope, rel=1e-6)
    now = T0 + 3 * DAY
    p = w.predict(20.0, now)
    assert p is not None and p.time_to_crossing_s == pytest.approx((20.0 - 16.0) / slope, rel=1e-3)
    w.add(T0, 99.0)  # older than the window: ignored
    w.add(now, float("nan"))  # bad reading: ignored
    restored = TrendWindow(DAY, 3600.0).load_dict(json.loads(json.dumps(w.to_dict())))
    assert restored.fit() == w.fit()
    with pytest.raises(ValueError, match="bucket_s"):
        TrendWindow(DAY, 7200.0).load_dict(w.to_dict())
    with pytest.raises(ValueError, match="bucket_s"):
        TrendWindow(60.0, 30.0)
