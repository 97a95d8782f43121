from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buttress.errors import ValidationError
from buttress.monitoring import (
    AlertLevel,
    DropRule,
    FlatRule,
    Sample,
    SpikeRule,
    alert_level,
    detect,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def hourly(values: list[float]) -> list[Sample]:
    return [Sample(T0 + i * HOUR, v) for i, v in enumerate(values)]


def now_after(series: list[Sample]) -> datetime:
    return series[-1].at + timedelta(minutes=1)


def test_drop_over_threshold_warns_and_names_the_metric() -> None:
    series = hourly([100, 110, 90, 100, 40])
    [anomaly] = detect(series, [DropRule("signups", warning=0.5)], now_after(series))
    assert anomaly.level is AlertLevel.WARNING
    assert anomaly.rule == "drop"
    assert anomaly.baseline == 100  # median of 100, 110, 90, 100
    assert "signups" in anomaly.message


def test_drop_escalates_to_critical() -> None:
    series = hourly([100, 100, 100, 10])
    rule = DropRule("orders", warning=0.5, critical=0.8)
    assert alert_level(detect(series, [rule], now_after(series))) is AlertLevel.CRITICAL


def test_drop_just_under_and_just_over_the_threshold() -> None:
    rule = DropRule("m", warning=0.5)
    under = hourly([100, 100, 100, 51])
    over = hourly([100, 100, 100, 49])
    exactly = hourly([100, 100, 100, 50])
    assert detect(under, [rule], now_after(under)) == []
    assert detect(exactly, [rule], now_after(exactly)) == []  # "more than" 50 %
    assert [a.level for a in detect(over, [rule], now_after(over))] == [AlertLevel.WARNING]


def test_spike_detects_doubling() -> None:
    series = hourly([10, 12, 8, 10, 25])
    [anomaly] = detect(series, [SpikeRule("errors", warning=1.0)], now_after(series))
    assert anomaly.rule == "spike"
    assert anomaly.observed == 25


def test_drop_and_spike_keep_their_own_defaults_and_field_order() -> None:
    drop, spike = DropRule("signups"), SpikeRule("errors")
    assert (drop.warning, spike.warning) == (0.5, 1.0)
    positional = (0.3, 0.6, timedelta(hours=2), 5)
    for rule in (DropRule("m", *positional), SpikeRule("m", *positional)):
        assert (rule.warning, rule.critical, rule.window, rule.min_samples) == positional
    # Same fields, other rule: never equal.
    drop_rule: object = DropRule("m", 0.5)
    assert drop_rule != SpikeRule("m", 0.5)
    with pytest.raises(ValidationError, match="warning"):
        DropRule("m", warning=1.5)
    assert SpikeRule("m", warning=1.5).warning == 1.5


def test_baseline_needs_enough_samples_inside_the_window() -> None:
    series = hourly([100, 100, 1])
    assert detect(series, [DropRule("m", min_samples=3)], now_after(series)) == []
    old_then_new = [Sample(T0, 100), Sample(T0 + HOUR, 100), Sample(T0 + 3 * HOUR * 24, 100),
                    Sample(T0 + 3 * HOUR * 24 + HOUR, 1)]  # fmt: skip
    rule = DropRule("m", window=timedelta(hours=2), min_samples=2)
    assert detect(old_then_new, [rule], now_after(old_then_new)) == []


def test_flat_at_zero_for_the_period() -> None:
    series = [Sample(T0 + i * HOUR, 0) for i in range(26)]
    rule = FlatRule("signups", period=timedelta(hours=24))
    [anomaly] = detect(series, [rule], series[-1].at)
    assert anomaly.message == "signups has been 0 for 24 h"
    with_one_signup = [*series[:-3], Sample(series[-3].at, 1), *series[-2:]]
    assert detect(with_one_signup, [rule], series[-1].at) == []


def test_flat_needs_history_covering_the_period() -> None:
    young = [Sample(T0 + i * HOUR, 0) for i in range(5)]
    assert detect(young, [FlatRule("signups")], young[-1].at) == []


def test_input_order_does_not_matter() -> None:
    series = hourly([100, 100, 100, 10])
    rules = [DropRule("m")]
    assert detect(list(reversed(series)), rules, now_after(series)) == detect(
        series, rules, now_after(series)
    )


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: DropRule("m", warning=1.5), "warning"),
        (lambda: DropRule("m", warning=0), "warning"),
        (lambda: DropRule("m", warning=0.5, critical=0.4), "critical"),
        (lambda: DropRule("", warning=0.5), "metric"),
        (lambda: SpikeRule("m", window=timedelta(0)), "window"),
        (lambda: SpikeRule("m", min_samples=0), "min_samples"),
        (lambda: FlatRule("m", period=timedelta(seconds=-1)), "period"),
        (lambda: Sample(datetime(2025, 1, 1), 1.0), "at"),
        (lambda: Sample(T0, float("nan")), "value"),
    ],
)
def test_bad_rules_and_samples_are_refused(make: object, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        make()  # type: ignore[operator]  # each parameter is a zero-argument factory
    assert info.value.field == field


def test_now_must_be_aware() -> None:
    with pytest.raises(ValidationError, match="now"):
        detect([], [], datetime(2025, 1, 1))


values = st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=30)
scales = st.sampled_from([2.0**k for k in range(-20, 21)])
any_rule = st.one_of(
    st.builds(DropRule, st.just("m"), st.sampled_from([0.1, 0.25, 0.5, 0.75])),
    st.builds(SpikeRule, st.just("m"), st.sampled_from([0.1, 0.5, 1.0, 3.0])),
    st.builds(FlatRule, st.just("m"), st.sampled_from([HOUR, 6 * HOUR, 24 * HOUR])),
)


@given(values, scales, any_rule)
def test_scaling_a_series_never_changes_the_verdict(
    raw: list[float], scale: float, rule: DropRule | SpikeRule | FlatRule
) -> None:
    # Powers of two scale floats exactly, so the property is tested without rounding noise.
    series = hourly(raw)
    scaled = hourly([v * scale for v in raw])
    now = now_after(series)
    assert [a.level for a in detect(series, [rule], now)] == [
        a.level for a in detect(scaled, [rule], now)
    ]


@given(values, st.sampled_from([0.1, 0.3, 0.5, 0.9]))
def test_drop_fires_exactly_when_the_fall_exceeds_the_threshold(
    raw: list[float], threshold: float
) -> None:
    series = hourly(raw)
    rule = DropRule("m", warning=threshold, min_samples=1)
    found = detect(series, [rule], now_after(series))
    earlier = [s.value for s in series[:-1] if s.at >= series[-1].at - rule.window]
    if not earlier:
        assert found == []
        return
    baseline = sorted(earlier)[len(earlier) // 2] if len(earlier) % 2 else (
        sorted(earlier)[len(earlier) // 2 - 1] + sorted(earlier)[len(earlier) // 2]
    ) / 2
    expected = baseline > 0 and (baseline - raw[-1]) / baseline > threshold
    assert bool(found) is expected


@given(st.lists(st.sampled_from(list(AlertLevel))))
def test_alert_level_is_the_worst(levels: list[AlertLevel]) -> None:
    from buttress.monitoring import Anomaly

    anomalies = [Anomaly("m", "drop", level, "", 0.0, None) for level in levels]
    assert alert_level(anomalies) == max(levels, default=AlertLevel.HEALTHY)
