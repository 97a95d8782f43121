"""Hypothesis strategies for buttress's values, for property tests of code using buttress.

Every value drawn is valid (its constructor accepted it), so a failing property
points at the code under test. Needs hypothesis (``pip install 'buttress[testing]'``);
``import buttress.testing`` alone never imports it.
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - exercised only without hypothesis
    from buttress._exceptions import MissingDependencyError

    raise MissingDependencyError("hypothesis", "testing") from exc

import attrs

from buttress._exceptions import ValidationError
from buttress.flags import Condition, Flag, FlagContext, Operator, Rule
from buttress.ratelimit import Rate
from buttress.schema import Column, Index, Schema, Table

if TYPE_CHECKING:
    from buttress.config import JSONValue

__all__ = [
    "ATTRIBUTES",
    "HOSTILE_IDENTIFIERS",
    "ROLES",
    "SCHEDULE_ORIGIN",
    "USER_IDS",
    "conditions",
    "flag_contexts",
    "flag_keys",
    "flags",
    "identifiers",
    "json_values",
    "percentages",
    "rates",
    "schemas",
    "splits",
    "variant_flags",
]

USER_IDS = tuple(f"user-{i}" for i in range(8))
"""Default pool for ``flags(users=...)`` and ``flag_contexts(user_ids=...)``: a small
shared pool makes targeting rules actually match the contexts drawn."""
ROLES = ("admin", "beta", "staff")

AttributeValue = str | int | float | bool
ATTRIBUTES: dict[str, tuple[AttributeValue, ...]] = {
    "country": ("FR", "DE", "US", "fr", ""),
    "plan": ("free", "pro", "team"),
    "age": (0, 17, 18, 65, 2.5, -1),
    "app_version": ("1.0.0", "1.2.3", "1.2.3-rc.1", "2.0.0", "1.10.0", "not-a-version"),
    "email": ("ann@acme.com", "bob@example.org", "ACME@acme.com", ""),
    "beta": (True, False, 1, 0),
}
"""Default pool for ``conditions`` and ``flag_contexts``: a few attributes with values
of several kinds (including kinds an operator does not apply to), so rules match."""

SCHEDULE_ORIGIN = datetime(2024, 1, 1, tzinfo=UTC)
"""``FakeClock()``'s default start: default schedules straddle it."""

HOSTILE_IDENTIFIERS = (
    'x"; DROP TABLE victim; --',
    "Robert'); DROP TABLE victim;--",
    "select",
    "order by",
    "a;b",
    '""',
    "ünïcødé",
    "`tick`",
    "[brackets]",
    "-- comment",
    "/* open",
    "$$dollar$$",
)
"""SQL identifiers that break naive quoting: keywords, quotes, comments, separators."""

# Text a database can store: no lone surrogates (not encodable as UTF-8).
_text_chars = st.characters(exclude_categories=["Cs"])
# Flag names and descriptions sit in PostgreSQL text columns, which refuse NUL.
_label_chars = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")

# Exactly representable as JSON in every store; integers stay within 64 bits.
_json_scalars: st.SearchStrategy[JSONValue] = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(_text_chars, max_size=16)
)

_KEY_FIRST = string.ascii_letters + string.digits + "_"
_PERCENTAGE_EDGES = (0, 0.01, 0.29, 1.1, 0.2900000001, 10, 33.33, 50, 99.99, 100)


def flag_keys(*, max_size: int = 40) -> st.SearchStrategy[str]:
    """Keys that ``Flag`` and ``ConfigStore`` accept (letters, digits, ``_.:-``)."""
    if isinstance(max_size, bool) or not isinstance(max_size, int) or not 1 <= max_size <= 200:
        raise ValidationError("max_size", "must be an int between 1 and 200")
    return _joined(_KEY_FIRST, _KEY_FIRST + ".:-", max_size)


def _joined(first: str, rest: str, max_size: int) -> st.SearchStrategy[str]:
    # Cheaper to draw and to shrink than the equivalent st.from_regex.
    return st.builds(
        str.__add__, st.sampled_from(first), st.text(st.sampled_from(rest), max_size=max_size - 1)
    )


def percentages() -> st.SearchStrategy[float]:
    """Rollout percentages in [0, 100], with the float edge cases buckets must honour."""
    return st.one_of(
        st.sampled_from(_PERCENTAGE_EDGES),
        st.integers(min_value=0, max_value=100),
        st.floats(min_value=0, max_value=100, allow_nan=False),
    )


@st.composite
def _schedule(
    draw: st.DrawFn, around: datetime, span: timedelta
) -> tuple[datetime | None, datetime | None]:
    def moment(offset: timedelta, zone: timezone) -> datetime:
        return (around + offset).astimezone(zone)

    # A non-UTC zone too: the same instant must decide the same way.
    zones = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))])
    span_us = span // timedelta(microseconds=1)
    offsets = st.integers(-span_us, span_us).map(lambda us: timedelta(microseconds=us))
    moments = st.builds(moment, offsets, zones)
    enable_at = draw(st.none() | moments)
    disable_at = draw(st.none() | moments)
    if enable_at is not None and disable_at is not None and disable_at <= enable_at:
        disable_at = enable_at + timedelta(microseconds=draw(st.integers(1, span_us)))
    return enable_at, disable_at


@st.composite
def _flags(
    draw: st.DrawFn,
    keys: st.SearchStrategy[str],
    users: Sequence[str],
    roles: Sequence[str],
    around: datetime,
    span: timedelta,
) -> Flag:
    enable_at, disable_at = draw(_schedule(around, span))
    name = draw(st.text(_label_chars, min_size=1, max_size=20).filter(str.strip))
    return Flag(
        draw(keys),
        name,
        description=draw(st.none() | st.text(_label_chars, max_size=30)),
        enabled=draw(st.booleans()),
        users=draw(st.frozensets(st.sampled_from(users), max_size=3)) if users else frozenset(),
        roles=draw(st.frozensets(st.sampled_from(roles), max_size=2)) if roles else frozenset(),
        percentage=draw(percentages()),
        enable_at=enable_at,
        disable_at=disable_at,
    )


def flags(
    *,
    keys: st.SearchStrategy[str] | None = None,
    users: Sequence[str] = USER_IDS,
    roles: Sequence[str] = ROLES,
    around: datetime = SCHEDULE_ORIGIN,
    span: timedelta = timedelta(days=30),
) -> st.SearchStrategy[Flag]:
    """Valid ``Flag`` values: any switch, targeting, percentage and schedule.

    Targeted users and roles come from the ``users``/``roles`` pools (share them
    with ``flag_contexts`` so targeting matches); ``enable_at``/``disable_at``,
    when set, fall within ``span`` of ``around`` (an aware datetime; the default
    is where a fresh ``FakeClock`` starts) and ``disable_at`` is after ``enable_at``.
    """
    if not isinstance(around, datetime) or around.tzinfo is None:
        raise ValidationError("around", "must be a timezone-aware datetime")
    if not isinstance(span, timedelta) or span <= timedelta(0):
        raise ValidationError("span", "must be a positive timedelta")
    _check_pool("users", users)
    _check_pool("roles", roles)
    return _flags(
        keys if keys is not None else flag_keys(), tuple(users), tuple(roles), around, span
    )


def _check_pool(field: str, pool: Sequence[str]) -> None:
    if isinstance(pool, str) or not all(isinstance(item, str) and item for item in pool):
        raise ValidationError(field, "must be a sequence of non-empty str (not one str)")


def flag_contexts(
    *, user_ids: Sequence[str] = USER_IDS, roles: Sequence[str] = ROLES
) -> st.SearchStrategy[FlagContext]:
    """``FlagContext`` values: anonymous or a user, with or without a role and attributes.

    Ids and roles come often from the pools (to meet the flags' targeting) and
    otherwise are arbitrary text, including the empty string.
    """
    _check_pool("user_ids", user_ids)
    _check_pool("roles", roles)
    user_id = st.none() | st.text(_text_chars, max_size=12)
    role = st.none() | st.text(_text_chars, max_size=12)
    if user_ids:
        user_id = st.sampled_from(tuple(user_ids)) | user_id
    if roles:
        role = st.sampled_from(tuple(roles)) | role
    attributes = st.dictionaries(
        st.text(_text_chars, max_size=8), _json_scalars, max_size=3
    ) | _pool_attributes(ATTRIBUTES)
    return st.builds(FlagContext, user_id=user_id, role=role, attributes=attributes)


def _pool_attributes(
    pool: dict[str, tuple[AttributeValue, ...]],
) -> st.SearchStrategy[dict[str, object]]:
    names = tuple(pool)

    def values(chosen: list[str]) -> st.SearchStrategy[dict[str, object]]:
        return st.fixed_dictionaries(
            {name: st.sampled_from(pool[name]) | _json_scalars for name in chosen}
        )

    return st.lists(st.sampled_from(names), unique=True, max_size=len(names)).flatmap(values)


_POOLED = tuple(value for values in ATTRIBUTES.values() for value in values)
_NUMBERS = st.sampled_from((0, 18, 18.5, -1, 100))
_VERSIONS = st.sampled_from(("0.0.1", "1.2.3", "1.2.3-rc.1", "1.10.0", "2.0.0", "1.2.3-alpha.10"))
_OPERANDS: dict[Operator, st.SearchStrategy[object]] = {
    Operator.EQUALS: st.sampled_from(_POOLED),
    Operator.IN: st.lists(st.sampled_from(_POOLED), min_size=1, max_size=4),
    Operator.LT: _NUMBERS,
    Operator.LTE: _NUMBERS,
    Operator.GT: _NUMBERS,
    Operator.GTE: _NUMBERS,
    Operator.SEMVER_EQ: _VERSIONS,
    Operator.SEMVER_LT: _VERSIONS,
    Operator.SEMVER_LTE: _VERSIONS,
    Operator.SEMVER_GT: _VERSIONS,
    Operator.SEMVER_GTE: _VERSIONS,
    Operator.STARTS_WITH: st.sampled_from(("", "a", "F", "1.", "ACME")),
    Operator.ENDS_WITH: st.sampled_from(("", "R", "@acme.com", ".0", "o")),
    Operator.CONTAINS: st.sampled_from(("", "@", "e", "rc", "-")),
    Operator.MATCHES: st.sampled_from((r"^[A-Z]{2}$", r"@acme\.com$", "rc", "(?i)acme", ".")),
}


def conditions(
    *,
    attributes: Sequence[str] | None = None,
    operators: Sequence[Operator | str] | None = None,
) -> st.SearchStrategy[Condition]:
    """Valid ``Condition`` values over ``attributes`` (default: ``ATTRIBUTES``' names and
    ``"user_id"``/``"role"``) and ``operators`` (default: every one), with operands that
    sometimes match, negated or not."""
    names = tuple(attributes) if attributes is not None else (*ATTRIBUTES, "user_id", "role")
    _check_pool("attributes", names)
    if not names:
        raise ValidationError("attributes", "must name at least one attribute")
    if operators is None:
        chosen = tuple(Operator)
    else:
        _check_pool("operators", operators)
        try:
            chosen = tuple(Operator(op) for op in operators)
        except ValueError:
            raise ValidationError("operators", "must name Operator values") from None
        if not chosen:
            raise ValidationError("operators", "must name at least one operator")

    def build(operator: Operator) -> st.SearchStrategy[Condition]:
        return st.builds(
            Condition,
            st.sampled_from(names),
            st.just(operator),
            _OPERANDS[operator],
            negate=st.booleans(),
        )

    return st.sampled_from(chosen).flatmap(build)


def splits(variants: Sequence[str]) -> st.SearchStrategy[tuple[tuple[str, float], ...]]:
    """``(variant, weight)`` pairs over ``variants``: percentages in hundredths adding up to 100."""
    _check_pool("variants", variants)
    names = tuple(variants)
    if not names:
        raise ValidationError("variants", "must name at least one variant")

    def weights(cuts: list[int]) -> tuple[tuple[str, float], ...]:
        edges = [0, *sorted(cuts), 10_000]
        return tuple((name, (edges[i + 1] - edges[i]) / 100) for i, name in enumerate(names))

    cuts = st.lists(st.integers(0, 10_000), min_size=len(names) - 1, max_size=len(names) - 1)
    return cuts.map(weights)


_VARIANT_NAMES = ("a", "b", "c", "on", "off")


@st.composite
def _variant_flags(draw: st.DrawFn, keys: st.SearchStrategy[str], around: datetime) -> Flag:
    names = draw(st.lists(st.sampled_from(_VARIANT_NAMES), min_size=1, max_size=4, unique=True))
    values: st.SearchStrategy[JSONValue] = (
        st.text(_text_chars, max_size=6)
        | st.integers(-5, 5)
        | st.booleans()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.dictionaries(st.text(_text_chars, max_size=4), _json_scalars, max_size=2)
        | st.lists(_json_scalars, max_size=2)
    )
    served = st.sampled_from(names)
    rule = st.builds(Rule, st.lists(conditions(), max_size=3), variant=served) | st.builds(
        Rule, st.lists(conditions(), max_size=2), split=splits(names)
    )
    enable_at, disable_at = draw(_schedule(around, timedelta(days=30)))
    metadata_values = st.text(_label_chars, max_size=6) | st.integers(-9, 9) | st.booleans()
    return Flag(
        draw(keys),
        "a flag",
        enabled=draw(st.booleans()),
        enable_at=enable_at,
        disable_at=disable_at,
        rules=draw(st.lists(rule, max_size=3)),
        variants={name: draw(values) for name in names},
        default_variant=draw(st.none() | served),
        split=draw(st.just(()) | splits(names)),
        metadata=draw(
            st.dictionaries(
                st.text(_label_chars, min_size=1, max_size=6), metadata_values, max_size=2
            )
        ),
    )


def variant_flags(
    *, keys: st.SearchStrategy[str] | None = None, around: datetime = SCHEDULE_ORIGIN
) -> st.SearchStrategy[Flag]:
    """Valid multivariate ``Flag`` values: variants of several JSON types, rules over
    ``ATTRIBUTES`` (a variant or a split each), maybe a split and a default variant,
    metadata, and a schedule within 30 days of ``around``."""
    if not isinstance(around, datetime) or around.tzinfo is None:
        raise ValidationError("around", "must be a timezone-aware datetime")
    return _variant_flags(keys if keys is not None else flag_keys(), around)


def rates(
    *,
    max_limit: int = 1_000,
    min_per_seconds: float = 0.001,
    max_per_seconds: float = 86_400.0,
) -> st.SearchStrategy[Rate]:
    """``Rate(limit, per_seconds)`` values; periods are whole seconds or floats in range."""
    if isinstance(max_limit, bool) or not isinstance(max_limit, int) or max_limit < 1:
        raise ValidationError("max_limit", "must be an int >= 1")
    if not 1e-9 <= min_per_seconds <= max_per_seconds:
        raise ValidationError("min_per_seconds", "must be >= 1e-9 and <= max_per_seconds")
    periods: st.SearchStrategy[float] = st.floats(
        min_value=min_per_seconds, max_value=max_per_seconds, allow_nan=False
    )
    low, high = max(1, math.ceil(min_per_seconds)), math.floor(max_per_seconds)
    if low <= high:
        periods = st.integers(min_value=low, max_value=high).map(float) | periods
    return st.builds(Rate, st.integers(min_value=1, max_value=max_limit), periods)


def json_values(*, max_leaves: int = 10) -> st.SearchStrategy[JSONValue]:
    """Values ``ConfigStore.set`` accepts and every store gives back exactly.

    None, bools, 64-bit ints, finite floats (with -0.0), text without lone
    surrogates, and lists and str-keyed dicts of those.
    """
    if isinstance(max_leaves, bool) or not isinstance(max_leaves, int) or max_leaves < 1:
        raise ValidationError("max_leaves", "must be an int >= 1")
    return st.recursive(
        _json_scalars,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(_text_chars, max_size=8), children, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def identifiers(*, hostile: bool = True) -> st.SearchStrategy[str]:
    """Table, column and index names: plain ones, and with ``hostile`` the SQL-breaking ones."""
    plain = _joined(string.ascii_lowercase, string.ascii_lowercase + string.digits + "_", 11)
    return (plain | st.sampled_from(HOSTILE_IDENTIFIERS)) if hostile else plain


# (declared type, a constant default that suits it on both SQLite and PostgreSQL)
_COLUMN_TYPES = (
    ("integer", "0"),
    ("bigint", "42"),
    ("text", "'it''s'"),
    ("varchar(20)", "'x'"),
    ("boolean", "false"),
    ("timestamptz", "'2024-01-01 00:00:00+00'"),
    ("numeric(10,2)", "1.5"),
    ("double precision", "2.5"),
    ("bytea", None),
)


@st.composite
def _column(draw: st.DrawFn, name: str) -> Column:
    type_, default = draw(st.sampled_from(_COLUMN_TYPES))
    with_default = default is not None and draw(st.booleans())
    return Column(
        name, type_, nullable=draw(st.booleans()), default=default if with_default else None
    )


@st.composite
def _table(draw: st.DrawFn, name: str, number: int, names: st.SearchStrategy[str]) -> Table:
    column_names = draw(st.lists(names, min_size=1, max_size=5, unique=True))
    columns = [draw(_column(n)) for n in column_names]
    primary_key = (column_names[0],) if draw(st.booleans()) else ()
    if primary_key:
        columns[0] = attrs.evolve(columns[0], type="integer", default=None, has_default=False)
    index_column_lists = draw(
        st.lists(
            st.lists(st.sampled_from(column_names), min_size=1, max_size=2, unique=True),
            max_size=2,
        )
    )
    indexes = []
    for i, index_columns in enumerate(index_column_lists):
        # Index names are unique per database, not per table: number them.
        prefix = draw(st.sampled_from(["ix", *HOSTILE_IDENTIFIERS]))
        indexes.append(Index(f"{prefix}{number}_{i}", index_columns, unique=draw(st.booleans())))
    return Table(
        name, columns, required=draw(st.booleans()), primary_key=primary_key, indexes=indexes
    )


@st.composite
def _schemas(draw: st.DrawFn, max_tables: int, names: st.SearchStrategy[str]) -> Schema:
    table_names = draw(st.lists(names, min_size=1, max_size=max_tables, unique=True))
    return Schema([draw(_table(n, i, names)) for i, n in enumerate(table_names)])


def schemas(*, max_tables: int = 4, hostile: bool = True) -> st.SearchStrategy[Schema]:
    """Declared ``Schema`` values valid on both SQLite and PostgreSQL.

    Tables have 1-5 columns of portable types (some with defaults), an optional
    integer primary key and up to two indexes; with ``hostile`` names include
    ``HOSTILE_IDENTIFIERS``.
    """
    if isinstance(max_tables, bool) or not isinstance(max_tables, int) or max_tables < 1:
        raise ValidationError("max_tables", "must be an int >= 1")
    return _schemas(max_tables, identifiers(hostile=hostile))
