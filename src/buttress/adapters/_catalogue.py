"""Every metric buttress exports, described once; both metrics adapters render this list.

A ``Metric`` says what a series is (name, kind, unit, description, label names,
buckets) and how it is fed: by an ``Event`` signal the ``Observer`` reduces
buttress's events to, or by a ``Read`` of live state when metrics are collected.
Adding a metric is adding an entry to ``CATALOGUE``; the adapters name none.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Generic, Protocol, TypeAlias, TypeVar

import attrs

from buttress.errors import ValidationError
from buttress.switches import SWITCHES, Switch

if TYPE_CHECKING:
    from buttress.db import DatabaseStats


class Observer(Protocol):
    """What a collection-time source reads from the adapters' observer."""

    def breaker_states(self) -> Sequence[tuple[str, int]]: ...

    def database_stats(self) -> Sequence[tuple[str, DatabaseStats]]: ...

    def error_levels(self) -> Sequence[tuple[str, int]]: ...


__all__ = [
    "BREAKERS",
    "BREAKER_CALL",
    "BREAKER_STATE_VALUES",
    "BREAKER_TRANSITION",
    "CATALOGUE",
    "DATABASES",
    "ERROR",
    "ERROR_COLLECTORS",
    "FLAG_EVALUATION",
    "HEALTH_RESULT",
    "HEALTH_STATUS_VALUES",
    "LATENCY",
    "MIGRATION",
    "MIGRATION_BUCKETS",
    "RATELIMIT_DECISION",
    "SWITCH_SOURCE",
    "Buckets",
    "Event",
    "Feed",
    "Kind",
    "Labels",
    "Metric",
    "Read",
    "Sample",
    "Signal",
    "Source",
    "bucket_boundaries",
    "check_buckets",
]

Labels: TypeAlias = tuple[str, ...]
"""Label values, in the order of the metric's ``labels``."""

Sample: TypeAlias = tuple[Labels, float]

T = TypeVar("T")

BREAKER_STATE_VALUES: Final = {"closed": 0, "half_open": 1, "open": 2}
"""The number a breaker-state gauge reports for each ``BreakerState`` value."""

HEALTH_STATUS_VALUES: Final = {"healthy": 0, "degraded": 1, "unhealthy": 2}
"""The number a health-status gauge reports for each ``Status`` value (higher is worse)."""


class Kind(enum.Enum):
    """What a metric is, in the terms both libraries share."""

    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"
    UP_DOWN_COUNTER = "up_down_counter"
    """A count that also goes down (connections open, calls in flight): read only."""


@attrs.frozen
class Buckets:
    """Histogram boundaries in seconds; the adapters' ``option`` argument overrides them."""

    option: str
    default: tuple[float, ...]


LATENCY: Final = Buckets(
    "buckets",
    (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0),
)
"""Call and health-check durations: 5 ms to 10 s (prometheus_client's own defaults)."""

MIGRATION_BUCKETS: Final = Buckets(
    "migration_buckets", (0.01, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0, 1800.0)
)
"""Migration durations: seconds to half an hour."""


@attrs.frozen
class Signal:
    """One kind of happening the ``Observer`` reports: label values in ``labels``
    order, plus a level (for gauges) and a duration (for histograms) when it has them."""

    name: str
    labels: Labels


BREAKER_TRANSITION: Final = Signal("breaker transition", ("breaker", "from_state", "to_state"))
BREAKER_CALL: Final = Signal("breaker call", ("breaker", "outcome"))
RATELIMIT_DECISION: Final = Signal("rate-limit decision", ("limiter", "allowed"))
FLAG_EVALUATION: Final = Signal("flag evaluation", ("flag", "reason"))
HEALTH_RESULT: Final = Signal("health result", ("component",))
MIGRATION: Final = Signal("migration", ("namespace", "outcome"))
ERROR: Final = Signal("error", ("category", "severity"))


@attrs.frozen
class Event:
    """Fed each time ``signal`` happens: a counter adds one (or the happening's
    amount, such as the number of errors counted at once), a gauge takes the
    level, a histogram observes the duration (when the happening has one)."""

    signal: Signal


@attrs.frozen
class Source(Generic[T]):
    """Live state read at collection time: ``read(observer)`` gives ``(name, item)``
    pairs, the name filling the metric's first label. An ``optional`` source's
    metrics are left out entirely while it has nothing (no empty families)."""

    name: str
    read: Callable[[Observer], Sequence[tuple[str, T]]]
    optional: bool = False


@attrs.frozen
class Read(Generic[T]):
    """Fed from ``source`` when collected: ``value(item)`` gives the samples of one
    item, as the values of the labels after the first and the number."""

    source: Source[T]
    value: Callable[[T], Iterable[Sample]]

    def samples(self, items: Iterable[tuple[str, T]]) -> list[Sample]:
        """The samples of ``items`` as ``source`` read them, with every label value."""
        return [
            ((name, *rest), number) for name, item in items for rest, number in self.value(item)
        ]


# ``Read`` is generic in what its source holds; a catalogue mixes sources.
Feed: TypeAlias = Event | Read[Any]

_NAME = re.compile(r"buttress(\.[a-z0-9_]+)+")


def _check_metric(metric: Metric) -> None:
    if not _NAME.fullmatch(metric.name):
        raise ValueError(f"{metric.name!r} is not a dotted lower-case buttress.* name")
    feed, kind = metric.feed, metric.kind
    if (kind is Kind.HISTOGRAM) != (metric.buckets is not None):
        raise ValueError(f"{metric.name}: histograms, and only they, have buckets")
    if isinstance(feed, Event):
        if metric.labels != feed.signal.labels:
            raise ValueError(f"{metric.name}: labels must be those of {feed.signal.name!r}")
        if kind is Kind.UP_DOWN_COUNTER:
            raise ValueError(f"{metric.name}: an up-down counter is read, not fed by events")
    elif kind is Kind.HISTOGRAM:
        raise ValueError(f"{metric.name}: a histogram is fed by events, not read")
    elif not metric.labels:
        raise ValueError(f"{metric.name}: a read metric's first label names its source's items")


@attrs.frozen
class Metric:
    """One metric as both adapters export it.

    ``name`` is the OpenTelemetry name (``buttress.breaker.calls``);
    ``prometheus_name`` derives the Prometheus one. ``unit`` is UCUM as
    OpenTelemetry wants it (``"s"``, ``"{call}"``, ``""`` for none).
    """

    name: str
    kind: Kind
    unit: str
    description: str
    labels: Labels
    feed: Feed
    buckets: Buckets | None = None

    def __attrs_post_init__(self) -> None:
        _check_metric(self)

    @property
    def prometheus_name(self) -> str:
        """Underscores for dots, and ``_seconds`` for a metric in seconds (in place
        of a trailing ``.duration``): Prometheus puts the unit in the name.
        Counters are exposed with ``_total`` appended to this name."""
        name = self.name.replace(".", "_")
        if self.unit == "s":
            name = name.removesuffix("_duration") + "_seconds"
        return name


BREAKERS: Final[Source[int]] = Source("breakers", lambda observer: observer.breaker_states())
"""Every observed breaker still alive, by name, with its state's number."""

DATABASES: Final[Source[DatabaseStats]] = Source(
    "databases", lambda observer: observer.database_stats(), optional=True
)
"""Every observed ``Database`` still alive, by the name it was observed under."""

ERROR_COLLECTORS: Final[Source[int]] = Source(
    "error collectors", lambda observer: observer.error_levels(), optional=True
)
"""Every observed ``ErrorStats`` still alive, by name, with its alert level under its rules."""


def _switches(_observer: Observer) -> Sequence[tuple[str, Switch]]:
    return [(switch.name, switch) for switch in SWITCHES]


SWITCH_SOURCE: Final[Source[Switch]] = Source("switches", _switches)
"""The global off switches (``buttress.switches``), read from the environment."""


def _just(number: Callable[[T], float]) -> Callable[[T], Iterable[Sample]]:
    """An item's one sample, labelled by its source name alone."""
    return lambda item: (((), number(item)),)


def _per_category(stats: DatabaseStats) -> Iterable[Sample]:
    return [((category,), count) for category, count in sorted(stats.errors.items())]


def _per_kind(stats: DatabaseStats) -> Iterable[Sample]:
    return [
        ((kind,), BREAKER_STATE_VALUES[state]) for kind, state in sorted(stats.breakers.items())
    ]


_STATE = "0 closed, 1 half-open, 2 open"

CATALOGUE: Final[tuple[Metric, ...]] = (
    Metric(
        "buttress.breaker.state",
        Kind.GAUGE,
        "",
        f"Circuit breaker state: {_STATE}.",
        ("breaker",),
        Read(BREAKERS, _just(lambda state: state)),
    ),
    Metric(
        "buttress.breaker.transitions",
        Kind.COUNTER,
        "{transition}",
        "Circuit breaker state changes.",
        BREAKER_TRANSITION.labels,
        Event(BREAKER_TRANSITION),
    ),
    Metric(
        "buttress.breaker.calls",
        Kind.COUNTER,
        "{call}",
        "Calls through a circuit breaker, by outcome (success, failure, ignored, rejected).",
        BREAKER_CALL.labels,
        Event(BREAKER_CALL),
    ),
    Metric(
        "buttress.breaker.call.duration",
        Kind.HISTOGRAM,
        "s",
        "Duration of calls a circuit breaker let through, by outcome.",
        BREAKER_CALL.labels,
        Event(BREAKER_CALL),
        LATENCY,
    ),
    Metric(
        "buttress.switch.enabled",
        Kind.GAUGE,
        "",
        "Global protection switches: 1 on, 0 switched off by ENABLE_CIRCUIT_BREAKER "
        "or ENABLE_RATE_LIMIT.",
        ("switch",),
        Read(SWITCH_SOURCE, _just(lambda switch: 1.0 if switch.enabled() else 0.0)),
    ),
    Metric(
        "buttress.switch.bypassed",
        Kind.COUNTER,
        "{call}",
        "Calls a breaker would have refused, or requests a limiter would have "
        "decided, let through because their switch was off.",
        ("switch",),
        Read(SWITCH_SOURCE, _just(lambda switch: float(switch.bypassed))),
    ),
    Metric(
        "buttress.ratelimit.decisions",
        Kind.COUNTER,
        "{decision}",
        "Rate limiter decisions, by limiter and whether the request was allowed.",
        RATELIMIT_DECISION.labels,
        Event(RATELIMIT_DECISION),
    ),
    Metric(
        "buttress.flag.evaluations",
        Kind.COUNTER,
        "{evaluation}",
        "Feature flag evaluations, by flag and the rule that decided.",
        FLAG_EVALUATION.labels,
        Event(FLAG_EVALUATION),
    ),
    Metric(
        "buttress.health.status",
        Kind.GAUGE,
        "",
        "Latest health check result: 0 healthy, 1 degraded, 2 unhealthy.",
        HEALTH_RESULT.labels,
        Event(HEALTH_RESULT),
    ),
    Metric(
        "buttress.health.check.duration",
        Kind.HISTOGRAM,
        "s",
        "Duration of health checks.",
        HEALTH_RESULT.labels,
        Event(HEALTH_RESULT),
        LATENCY,
    ),
    Metric(
        "buttress.migrations",
        Kind.COUNTER,
        "{migration}",
        "Migrations applied, failed or rolled back.",
        MIGRATION.labels,
        Event(MIGRATION),
    ),
    Metric(
        "buttress.migration.duration",
        Kind.HISTOGRAM,
        "s",
        "Duration of migrations, by outcome.",
        MIGRATION.labels,
        Event(MIGRATION),
        MIGRATION_BUCKETS,
    ),
    Metric(
        "buttress.errors",
        Kind.COUNTER,
        "{error}",
        "Errors counted by ErrorStats (captured, logged or recorded), by category and severity.",
        ERROR.labels,
        Event(ERROR),
    ),
    Metric(
        "buttress.error_rate.alert",
        Kind.GAUGE,
        "",
        "Error-rate alert level of an observed ErrorStats under its rules: "
        "0 healthy, 1 warning, 2 critical.",
        ("collector",),
        Read(ERROR_COLLECTORS, _just(lambda level: level)),
    ),
    Metric(
        "buttress.db.queries",
        Kind.COUNTER,
        "{query}",
        "Queries run by a buttress.db client (a retried query counts once).",
        ("database",),
        Read(DATABASES, _just(lambda stats: stats.queries)),
    ),
    Metric(
        "buttress.db.errors",
        Kind.COUNTER,
        "{error}",
        "Queries that failed in the end, by error category.",
        ("database", "category"),
        Read(DATABASES, _per_category),
    ),
    Metric(
        "buttress.db.slow_queries",
        Kind.COUNTER,
        "{query}",
        "Queries slower than the client's slow_query_threshold.",
        ("database",),
        Read(DATABASES, _just(lambda stats: stats.slow_queries)),
    ),
    Metric(
        "buttress.db.retries",
        Kind.COUNTER,
        "{retry}",
        "Extra attempts made after transient errors.",
        ("database",),
        Read(DATABASES, _just(lambda stats: stats.retries)),
    ),
    Metric(
        "buttress.db.latency.average",
        Kind.GAUGE,
        "s",
        "Average query latency since the client started counting.",
        ("database",),
        Read(DATABASES, _just(lambda stats: stats.avg_latency_ms / 1000.0)),
    ),
    Metric(
        "buttress.db.latency.p95",
        Kind.GAUGE,
        "s",
        "95th percentile query latency over the client's recent window.",
        ("database",),
        Read(DATABASES, _just(lambda stats: stats.p95_latency_ms / 1000.0)),
    ),
    Metric(
        "buttress.db.breaker.state",
        Kind.GAUGE,
        "",
        f"State of the breaker per operation kind: {_STATE}.",
        ("database", "kind"),
        Read(DATABASES, _per_kind),
    ),
)


def bucket_boundaries(
    options: Mapping[str, Sequence[float] | None],
) -> dict[Buckets, tuple[float, ...]]:
    """Each bucket set's boundaries: the adapter option of its name, checked, else the default."""
    chosen: dict[Buckets, tuple[float, ...]] = {}
    for metric in CATALOGUE:
        buckets = metric.buckets
        if buckets is not None and buckets not in chosen:
            given = options.get(buckets.option)
            chosen[buckets] = (
                buckets.default if given is None else check_buckets(buckets.option, given)
            )
    return chosen


def _check_catalogue(catalogue: Sequence[Metric]) -> None:
    names = [metric.name for metric in catalogue]
    if len(set(names)) != len(names):
        raise ValueError("metric names must be unique")
    # Two metrics of one kind fed by one signal would only ever hold the same numbers.
    fed = [(m.feed.signal, m.kind) for m in catalogue if isinstance(m.feed, Event)]
    if len(set(fed)) != len(fed):
        raise ValueError("a signal feeds at most one metric of each kind")


_check_catalogue(CATALOGUE)


def check_buckets(field: str, buckets: Sequence[float]) -> tuple[float, ...]:
    """``buckets`` as floats, or ``ValidationError`` unless they increase and are positive."""
    values = tuple(buckets)
    if (
        not values
        or any(isinstance(b, bool) or not isinstance(b, int | float) or not b > 0 for b in values)
        or list(values) != sorted(set(values))
    ):
        raise ValidationError(field, "must be increasing positive numbers of seconds")
    return tuple(float(b) for b in values)
