"""The pure arithmetic of error statistics: summaries of counts, bounded buckets.

No clock, no store: ``summarize`` folds counts over a period and ``bump``
adds to a bucket that never holds more than its key limit.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from buttress._exceptions import ValidationError
from buttress.monitoring.errors._values import (
    OTHER_COMPONENT,
    CountKey,
    ErrorCount,
    ErrorSummary,
    check_aware,
    ranked,
)

__all__ = [
    "bump",
    "summarize",
]


def summarize(counts: Iterable[ErrorCount], since: datetime, until: datetime) -> ErrorSummary:
    """Totals of the buckets overlapping ``[since, until]``.

    A bucket is counted whole when it overlaps the window, so the totals are
    exact to one bucket width (an upper bound, never an undercount).
    """
    check_aware("since", since)
    check_aware("until", until)
    if until < since:
        raise ValidationError("until", "must not be before since")
    total = 0
    by_category: dict[str, int] = {}
    by_severity: dict[str, int] = {}
    by_component: dict[str, int] = {}
    for count in counts:
        if not count.overlaps(since, until):
            continue
        total += count.count
        by_category[count.category] = by_category.get(count.category, 0) + count.count
        by_severity[count.severity] = by_severity.get(count.severity, 0) + count.count
        by_component[count.component] = by_component.get(count.component, 0) + count.count
    return ErrorSummary(
        since, until, total, ranked(by_category), ranked(by_severity), ranked(by_component)
    )


def bump(bucket: dict[CountKey, int], key: CountKey, count: int, max_keys: int) -> CountKey:
    if key not in bucket and len(bucket) >= max_keys:
        key = (key[0], key[1], OTHER_COMPONENT)
    bucket[key] = bucket.get(key, 0) + count
    return key
