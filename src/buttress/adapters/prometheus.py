"""Prometheus metrics for buttress (``pip install 'buttress[prometheus]'``).

``PrometheusMetrics(registry).install()`` registers every metric of the catalogue
(``_catalogue``) in a ``prometheus_client`` registry, fed from ``buttress.events``
and every circuit breaker, with live state read at scrape time; ``uninstall()``
takes them out again. This module only renders the catalogue as collectors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from buttress.adapters._catalogue import (
    CATALOGUE,
    MIGRATION_BUCKETS,
    Buckets,
    Event,
    Kind,
    Labels,
    Metric,
    Read,
    Signal,
    Source,
    bucket_boundaries,
)
from buttress.adapters._observe import Observer, ObservingAdapter, SignalRecorder
from buttress.errors import MissingDependencyError, ValidationError

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.metrics_core import Metric as Family
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("prometheus-client", "prometheus") from exc

__all__ = ["DEFAULT_MIGRATION_BUCKETS", "PrometheusMetrics"]

DEFAULT_MIGRATION_BUCKETS: Final = MIGRATION_BUCKETS.default
"""Buckets of ``buttress_migration_seconds``: migrations take seconds to minutes."""


class _Unfed:
    """Stands in for the child of a kind the signal does not feed: does nothing."""

    __slots__ = ()

    def inc(self, amount: float = 1) -> None:
        return None

    def set(self, value: float) -> None:
        return None

    def observe(self, value: float) -> None:
        return None


_UNFED: Final = _Unfed()


class _Series:
    """One label set's children. The histogram's is bound at the first duration
    (None until then): a happening without one (a rejected call, the readiness
    flag) leaves no empty histogram series behind."""

    __slots__ = ("counter", "gauge", "histogram")

    def __init__(
        self, counter: Counter | _Unfed, gauge: Gauge | _Unfed, histogram: _Unfed | None
    ) -> None:
        self.counter = counter
        self.gauge = gauge
        self.histogram: Histogram | _Unfed | None = histogram


class _SignalRecorder(SignalRecorder):
    """Prometheus metrics fed from one signal, and their children by label values."""

    __slots__ = ("_counter", "_gauge", "_histogram", "_lone", "_series")

    def __init__(self) -> None:
        self._counter: Counter | None = None
        self._gauge: Gauge | None = None
        self._histogram: Histogram | None = None
        # labels() takes a lock and builds a key: hot paths deserve the cached children.
        self._lone: dict[Labels, Counter] = {}
        self._series: dict[Labels, _Series] = {}

    def add(self, metric: Counter | Gauge | Histogram) -> None:
        if isinstance(metric, Counter):
            self._counter = metric
        elif isinstance(metric, Gauge):
            self._gauge = metric
        else:
            self._histogram = metric

    def _counter_only(self) -> bool:
        return self._gauge is None and self._histogram is None

    def _count(
        self, labels: Labels, level: float | None, seconds: float | None, amount: float = 1, /
    ) -> None:
        child = self._lone.get(labels)
        if child is None:
            assert self._counter is not None  # recorder() chose this for a lone counter
            child = self._lone[labels] = self._counter.labels(*labels)
        child.inc(amount)

    def _record(
        self, labels: Labels, level: float | None, seconds: float | None, amount: float = 1, /
    ) -> None:
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = self._bind(labels)
        series.counter.inc(amount)
        if level is not None:
            series.gauge.set(level)
        if seconds is not None:
            histogram = series.histogram
            if histogram is None:
                assert self._histogram is not None  # None only while one is to be bound
                histogram = series.histogram = self._histogram.labels(*labels)
            histogram.observe(seconds)

    def _bind(self, labels: Labels) -> _Series:
        counter, gauge = self._counter, self._gauge
        return _Series(
            _UNFED if counter is None else counter.labels(*labels),
            _UNFED if gauge is None else gauge.labels(*labels),
            _UNFED if self._histogram is None else None,
        )


def _event_metric(
    metric: Metric, boundaries: Mapping[Buckets, tuple[float, ...]]
) -> Counter | Gauge | Histogram:
    # Created unregistered: install() registers them and uninstall() removes them.
    name, help_text, labels = metric.prometheus_name, metric.description, metric.labels
    if metric.kind is Kind.COUNTER:
        return Counter(name, help_text, labels, registry=None)
    if metric.kind is Kind.GAUGE:
        return Gauge(name, help_text, labels, registry=None)
    assert metric.buckets is not None  # the catalogue checks that histograms have them
    buckets = boundaries[metric.buckets]
    return Histogram(name, help_text, labels, buckets=buckets, registry=None)


class _SourceCollector(Collector):
    """The metrics read from one source, which is read once per scrape."""

    def __init__(self, source: Source[Any], metrics: Sequence[Metric], observer: Observer) -> None:
        self._source = source
        self._metrics = metrics
        self._observer = observer

    def describe(self) -> Iterable[Family]:
        return [self._family(metric) for metric in self._metrics]

    def collect(self) -> Iterable[Family]:
        items = self._source.read(self._observer)
        if not items and self._source.optional:
            return ()
        families = []
        for metric in self._metrics:
            family = self._family(metric)
            assert isinstance(metric.feed, Read)  # only read metrics are grouped by source
            for labels, value in metric.feed.samples(items):
                family.add_metric(labels, value)
            families.append(family)
        return families

    @staticmethod
    def _family(metric: Metric) -> CounterMetricFamily | GaugeMetricFamily:
        name, help_text, labels = metric.prometheus_name, metric.description, metric.labels
        if metric.kind is Kind.COUNTER:
            return CounterMetricFamily(name, help_text, labels=labels)
        # An up-down counter has no Prometheus type of its own: it is a gauge there.
        return GaugeMetricFamily(name, help_text, labels=labels)


class PrometheusMetrics(ObservingAdapter):
    """buttress's metrics in a Prometheus registry (the default one if ``registry`` is None).

    >>> from prometheus_client import CollectorRegistry
    >>> metrics = PrometheusMetrics(CollectorRegistry()).install()
    >>> metrics.uninstall()

    ``buckets`` are the histogram buckets of call and health-check latencies
    (prometheus_client's defaults, 5 ms to 10 s, when None).
    ``observe_database(db)`` adds a ``buttress.db.Database``'s statistics.
    ``install()`` raises ``ValidationError`` when the registry already holds
    metrics of these names (another ``PrometheusMetrics`` installed there);
    ``uninstall()`` unregisters them, keeping their values for a later ``install()``.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        buckets: Sequence[float] | None = None,
        migration_buckets: Sequence[float] = DEFAULT_MIGRATION_BUCKETS,
    ) -> None:
        if registry is None:
            registry = REGISTRY
        elif not isinstance(registry, CollectorRegistry):
            raise ValidationError("registry", "must be a prometheus_client.CollectorRegistry")
        boundaries = bucket_boundaries({"buckets": buckets, "migration_buckets": migration_buckets})
        self.registry = registry
        recorders: dict[Signal, _SignalRecorder] = {}
        by_metric: dict[Metric, Collector] = {}
        for metric in CATALOGUE:
            if isinstance(metric.feed, Event):
                made = _event_metric(metric, boundaries)
                recorders.setdefault(metric.feed.signal, _SignalRecorder()).add(made)
                by_metric[metric] = made
        super().__init__({signal: made.recorder() for signal, made in recorders.items()})
        sources: dict[Source[Any], list[Metric]] = {}
        for metric in CATALOGUE:
            if isinstance(metric.feed, Read):
                sources.setdefault(metric.feed.source, []).append(metric)
        for source, metrics in sources.items():
            collector = _SourceCollector(source, metrics, self._observer)
            for metric in metrics:
                by_metric[metric] = collector
        # In catalogue order, each collector once: the order of the exposition.
        self._collectors = list(dict.fromkeys(by_metric[metric] for metric in CATALOGUE))

    def _register(self) -> None:
        done: list[Collector] = []
        try:
            for collector in self._collectors:
                self.registry.register(collector)
                done.append(collector)
        except ValueError as exc:
            for collector in done:
                self.registry.unregister(collector)
            raise ValidationError(
                "registry", f"already holds buttress metrics ({exc}); uninstall those first"
            ) from None

    def _unregister(self) -> None:
        for collector in self._collectors:
            self.registry.unregister(collector)
