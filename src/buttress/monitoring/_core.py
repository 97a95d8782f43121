"""Pure anomaly detection over one metric's recorded series.

A rule compares the newest sample with a trailing baseline (the median of the
samples in a window before it) or checks that a metric stayed flat at zero for a
period. Rules are ratios, so a series scaled by a positive constant gets the
same verdict. Nothing here reads a clock or storage: ``now`` is passed in.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeAlias

import attrs

from buttress._checks import check_count
from buttress._exceptions import ValidationError
from buttress.monitoring._values import (
    AlertLevel,
    Anomaly,
    Sample,
    check_finite,
    check_metric_name_attr,
)

__all__ = [
    "DropRule",
    "FlatRule",
    "Rule",
    "SpikeRule",
    "alert_level",
    "detect",
    "human_period",
]


def _fraction(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    check_finite(_instance, attribute, value)
    if value <= 0:
        raise ValidationError(attribute.name, "must be > 0")


def _positive_period(
    _instance: object, attribute: attrs.Attribute[timedelta], value: timedelta
) -> None:
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise ValidationError(attribute.name, "must be a positive timedelta")


def _min_samples(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    check_count(attribute.name, value, at_least=1)


def _baseline(
    series: Sequence[Sample], latest: Sample, window: timedelta, min_samples: int
) -> float | None:
    start = latest.at - window
    before = [s.value for s in series if start <= s.at < latest.at]
    if len(before) < min_samples:
        return None
    return statistics.median(before)


def _check_thresholds(warning: float, critical: float | None) -> None:
    if critical is not None and critical < warning:
        raise ValidationError("critical", "must be >= the warning threshold")


@attrs.frozen
class _TrailingMedianRule:
    """What ``DropRule`` and ``SpikeRule`` share: their fields, and the newest value
    against the trailing median. Each sets its own ``warning`` default."""

    metric: str = attrs.field(validator=check_metric_name_attr)
    warning: float = attrs.field(default=0.5, validator=_fraction)
    critical: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(_fraction)
    )
    window: timedelta = attrs.field(default=timedelta(days=1), validator=_positive_period)
    min_samples: int = attrs.field(default=3, validator=_min_samples)
    _kind: ClassVar[str]
    _sign: ClassVar[int]
    """+1: a rise is the anomaly; -1: a fall is."""
    _relation: ClassVar[str]

    def __attrs_post_init__(self) -> None:
        _check_thresholds(self.warning, self.critical)

    def check(self, series: Sequence[Sample], now: datetime) -> Anomaly | None:
        if not series:
            return None
        latest = series[-1]
        baseline = _baseline(series, latest, self.window, self.min_samples)
        if baseline is None or baseline <= 0:
            return None
        change = self._sign * (latest.value - baseline) / baseline
        level = _level(change, self.warning, self.critical)
        if level is AlertLevel.HEALTHY:
            return None
        return Anomaly(
            self.metric,
            self._kind,
            level,
            f"{self.metric} is {change:.0%} {self._relation} its trailing median "
            f"({latest.value:g} vs {baseline:g})",
            latest.value,
            baseline,
        )


_Fields: TypeAlias = "list[attrs.Attribute[Any]]"


def _warning_default(default: float) -> Callable[[type, _Fields], _Fields]:
    """A rule's own default for the shared ``warning`` field; the fields keep their order."""

    def transform(_cls: type, fields: _Fields) -> _Fields:
        return [f.evolve(default=default) if f.name == "warning" else f for f in fields]

    return transform


@attrs.frozen(field_transformer=_warning_default(0.5))
class DropRule(_TrailingMedianRule):
    """Newest value below the trailing median by more than ``warning`` (a fraction).

    ``DropRule("signups", warning=0.5)`` warns when signups fall more than 50 %
    below the median of the previous ``window``; ``critical`` (optional, larger)
    escalates.
    """

    _kind: ClassVar[str] = "drop"
    _sign: ClassVar[int] = -1
    _relation: ClassVar[str] = "below"

    def __attrs_post_init__(self) -> None:
        if self.warning >= 1:
            raise ValidationError("warning", "a drop is a fraction below 1 (0.5 means 50 %)")
        if self.critical is not None and self.critical >= 1:
            raise ValidationError("critical", "a drop is a fraction below 1")
        _check_thresholds(self.warning, self.critical)


@attrs.frozen(field_transformer=_warning_default(1.0))
class SpikeRule(_TrailingMedianRule):
    """Newest value above the trailing median by more than ``warning`` (a fraction).

    ``SpikeRule("errors", warning=1.0)`` warns when errors more than double.
    """

    _kind: ClassVar[str] = "spike"
    _sign: ClassVar[int] = 1
    _relation: ClassVar[str] = "above"


@attrs.frozen
class FlatRule:
    """The metric stayed at exactly zero for the whole of ``period`` ("no signups in 24 h").

    Fires only when the recorded samples cover the period (the oldest sample in
    the series is at least ``period`` old), so a fresh installation does not
    alert.
    """

    metric: str = attrs.field(validator=check_metric_name_attr)
    period: timedelta = attrs.field(default=timedelta(hours=24), validator=_positive_period)
    level: AlertLevel = attrs.field(default=AlertLevel.WARNING)

    def check(self, series: Sequence[Sample], now: datetime) -> Anomaly | None:
        if not series or now - series[0].at < self.period:
            return None
        start = now - self.period
        recent = [s.value for s in series if s.at >= start]
        if not recent or any(value != 0 for value in recent):
            return None
        return Anomaly(
            self.metric,
            "flat",
            self.level,
            f"{self.metric} has been 0 for {human_period(self.period)}",
            0.0,
            None,
        )


Rule: TypeAlias = DropRule | SpikeRule | FlatRule


def _level(change: float, warning: float, critical: float | None) -> AlertLevel:
    if critical is not None and change > critical:
        return AlertLevel.CRITICAL
    if change > warning:
        return AlertLevel.WARNING
    return AlertLevel.HEALTHY


def human_period(period: timedelta) -> str:
    """``period`` as people write it: ``5 min``, ``1 h``, ``90 s``."""
    seconds = period.total_seconds()
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def detect(series: Iterable[Sample], rules: Iterable[Rule], now: datetime) -> list[Anomaly]:
    """Every anomaly the rules find in ``series`` (any order; sorted by time here)."""
    if now.tzinfo is None:
        raise ValidationError("now", "must be a timezone-aware datetime")
    ordered = sorted(series, key=lambda sample: sample.at)
    found = []
    for rule in rules:
        anomaly = rule.check(ordered, now)
        if anomaly is not None:
            found.append(anomaly)
    return found


def alert_level(anomalies: Iterable[Anomaly]) -> AlertLevel:
    """The worst level among ``anomalies`` (HEALTHY when there are none)."""
    return max((a.level for a in anomalies), default=AlertLevel.HEALTHY)
