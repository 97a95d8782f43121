"""OpenTelemetry metrics for buttress (``pip install 'buttress[otel]'``).

``OpenTelemetryMetrics(meter_provider).install()`` renders the metric catalogue
(``_catalogue``) as instruments on a ``Meter``, fed from ``buttress.events``,
every circuit breaker and the observed ``buttress.db.Database`` clients. It needs
only ``opentelemetry-api``: the application's SDK (or none, making every
instrument a no-op) decides where the numbers go.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from buttress._version import __version__
from buttress.adapters._catalogue import (
    CATALOGUE,
    LATENCY,
    MIGRATION_BUCKETS,
    Buckets,
    Kind,
    Labels,
    Metric,
    Read,
    Signal,
    bucket_boundaries,
)
from buttress.adapters._observe import ObservingAdapter, SignalRecorder
from buttress.errors import MissingDependencyError, ValidationError

try:
    from opentelemetry import metrics as otel_metrics
    from opentelemetry.metrics import CallbackOptions, Histogram, Meter, MeterProvider, Observation
    from opentelemetry.util.types import Attributes
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("opentelemetry-api", "otel") from exc

__all__ = ["DEFAULT_LATENCY_BUCKETS", "DEFAULT_MIGRATION_BUCKETS", "OpenTelemetryMetrics"]

DEFAULT_LATENCY_BUCKETS: Final = LATENCY.default
"""Bucket boundaries (seconds) advised for call and health-check durations; the
SDK's own defaults are meant for milliseconds."""

DEFAULT_MIGRATION_BUCKETS: Final = MIGRATION_BUCKETS.default
"""Bucket boundaries (seconds) advised for migration durations."""

_CALL_DURATION: Final = "buttress.breaker.call.duration"

_Callback = Callable[[CallbackOptions], Iterable[Observation]]


class _SignalRecorder(SignalRecorder):
    """Instruments fed from one signal.

    Counters and gauges are tallied here and reported by observable instruments
    when the SDK collects: a locked dict update costs a small fraction of a
    synchronous SDK counter's ``add()``. Histograms have no asynchronous form.
    """

    __slots__ = ("_attributes", "_histogram", "_labels", "_lock", "counts", "levels")

    def __init__(self, labels: Labels, lock: threading.Lock) -> None:
        self._labels = labels
        self._lock = lock
        self._attributes: dict[Labels, Attributes] = {}
        self.counts: dict[Labels, float] | None = None
        self.levels: dict[Labels, float] | None = None
        self._histogram: Histogram | None = None

    def store(self, kind: Kind) -> dict[Labels, float]:
        """The table of values by label values, counted or set as the signal happens."""
        values: dict[Labels, float] = {}
        if kind is Kind.COUNTER:
            self.counts = values
        else:
            self.levels = values
        return values

    def histogram(self, histogram: Histogram) -> None:
        self._histogram = histogram

    def attributes(self, labels: Labels) -> Attributes:
        # One dict per label set, built once. A plain dict, because the SDK handles
        # it twice as fast as a read-only view; nothing mutates it.
        attributes = self._attributes.get(labels)
        if attributes is None:
            attributes = self._attributes[labels] = dict(zip(self._labels, labels, strict=True))
        return attributes

    def _counter_only(self) -> bool:
        return self.levels is None and self._histogram is None

    def _count(
        self, labels: Labels, level: float | None, seconds: float | None, amount: float = 1, /
    ) -> None:
        counts = self.counts
        assert counts is not None  # recorder() chose this for a lone counter
        with self._lock:
            counts[labels] = counts.get(labels, 0) + amount

    def _record(
        self, labels: Labels, level: float | None, seconds: float | None, amount: float = 1, /
    ) -> None:
        counts, levels = self.counts, self.levels
        with self._lock:
            if counts is not None:
                counts[labels] = counts.get(labels, 0) + amount
            if level is not None and levels is not None:
                levels[labels] = level
        if seconds is not None and self._histogram is not None:
            self._histogram.record(seconds, self.attributes(labels))


class OpenTelemetryMetrics(ObservingAdapter):
    """buttress's metrics as OpenTelemetry instruments on the meter ``"buttress"``.

    ``meter_provider`` defaults to the global one (``opentelemetry.metrics``).
    ``call_durations=False`` skips ``buttress.breaker.call.duration``: a
    synchronous SDK histogram costs several µs per breaker call.
    ``observe_database(db)`` adds a ``buttress.db.Database``'s statistics.
    Instruments cannot be deleted in OpenTelemetry: ``uninstall()`` stops
    recording and makes the gauges and the database instruments report nothing.
    """

    def __init__(
        self,
        meter_provider: MeterProvider | None = None,
        *,
        buckets: Sequence[float] = DEFAULT_LATENCY_BUCKETS,
        migration_buckets: Sequence[float] = DEFAULT_MIGRATION_BUCKETS,
        call_durations: bool = True,
    ) -> None:
        if meter_provider is not None and not isinstance(meter_provider, MeterProvider):
            raise ValidationError("meter_provider", "must be an opentelemetry MeterProvider")
        boundaries = bucket_boundaries({"buckets": buckets, "migration_buckets": migration_buckets})
        left_out = frozenset() if call_durations else frozenset({_CALL_DURATION})
        self._values_lock = threading.Lock()
        # The global provider may be a proxy until the application sets its SDK up;
        # instruments made on it start recording once it does.
        provider = meter_provider or otel_metrics.get_meter_provider()
        self.meter: Meter = provider.get_meter("buttress", __version__)
        recorders: dict[Signal, _SignalRecorder] = {}
        for metric in CATALOGUE:
            if metric.name not in left_out:
                self._create(metric, recorders, boundaries)
        super().__init__({signal: made.recorder() for signal, made in recorders.items()})

    def _create(
        self,
        metric: Metric,
        recorders: dict[Signal, _SignalRecorder],
        boundaries: Mapping[Buckets, tuple[float, ...]],
    ) -> None:
        meter, feed = self.meter, metric.feed
        callback: _Callback
        if isinstance(feed, Read):
            callback = self._reader(metric, feed)
        else:
            signal = feed.signal
            recorder = recorders.get(signal)
            if recorder is None:
                recorder = recorders[signal] = _SignalRecorder(signal.labels, self._values_lock)
            if metric.kind is Kind.HISTOGRAM:
                assert metric.buckets is not None  # the catalogue checks that histograms have them
                recorder.histogram(
                    meter.create_histogram(
                        metric.name,
                        metric.unit,
                        metric.description,
                        explicit_bucket_boundaries_advisory=boundaries[metric.buckets],
                    )
                )
                return
            # Totals stay readable after uninstall(), frozen, as a synchronous
            # counter's would; a gauge's last level is no longer current then.
            callback = self._stored(recorder, recorder.store(metric.kind), metric.kind)
        observable = {
            Kind.COUNTER: meter.create_observable_counter,
            Kind.GAUGE: meter.create_observable_gauge,
            Kind.UP_DOWN_COUNTER: meter.create_observable_up_down_counter,
        }[metric.kind]
        observable(metric.name, [callback], metric.unit, metric.description)

    def _reader(self, metric: Metric, feed: Read[Any]) -> _Callback:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            if not self.installed:
                return []
            samples = feed.samples(feed.source.read(self._observer))
            # Built at each collection, not cached: this is no hot path.
            return [
                Observation(value, dict(zip(metric.labels, labels, strict=True)))
                for labels, value in samples
            ]

        return observe

    def _stored(
        self, recorder: _SignalRecorder, values: dict[Labels, float], kind: Kind
    ) -> _Callback:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            if kind is not Kind.COUNTER and not self.installed:
                return []
            with self._values_lock:
                items = list(values.items())
            return [Observation(value, recorder.attributes(labels)) for labels, value in items]

        return observe
