"""``flags_override``: force feature flags on or off in one ``FeatureFlags`` for a block.

It swaps forced flags into the in-memory snapshot only, never the store, so a
test cannot leak a forced value into a database another test reads.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from buttress._exceptions import ValidationError

if TYPE_CHECKING:
    from buttress.flags import FeatureFlags, Flag

__all__ = ["flags_override"]


@contextmanager
def flags_override(flags: FeatureFlags, overrides: Mapping[str, bool]) -> Iterator[FeatureFlags]:
    """Make ``flags.is_enabled(key)`` return ``overrides[key]`` for everyone inside the block.

    >>> from buttress.flags import FeatureFlags
    >>> flags = FeatureFlags()
    >>> with flags_override(flags, {"new-checkout": True}):
    ...     flags.is_enabled("new-checkout")
    True
    >>> flags.is_enabled("new-checkout")
    False

    On exit each flag goes back to what the snapshot held before (absent flags
    become absent again), unless something changed that flag meanwhile, such as
    an ``upsert`` in the test: the newer change wins. Works with any store; the
    store itself is never written.
    """
    from buttress._checks import validate_key
    from buttress.flags import Flag

    if not isinstance(overrides, Mapping):
        raise ValidationError("overrides", "must be a mapping of flag key -> bool")
    forced: dict[str, Flag] = {}
    previous: dict[str, Flag | None] = {}
    for key, enabled in overrides.items():
        validate_key("overrides key", key)
        if not isinstance(enabled, bool):
            raise ValidationError(f"overrides[{key!r}]", "must be True or False")
        before = flags.snapshot.get(key)
        previous[key] = before
        # A flag with no targeting, schedule or percentage is decided by its
        # switch alone, for every context.
        forced[key] = Flag(key, before.name if before is not None else key, enabled=enabled)
    for key, flag in forced.items():
        # The snapshot is the only thing is_enabled reads; swapping through
        # FeatureFlags' own path keeps copy-on-write and notifies on_change listeners.
        flags._apply(key, flag)
    try:
        yield flags
    finally:
        for key, flag in forced.items():
            if flags.snapshot.get(key) is flag:
                flags._apply(key, previous[key])
