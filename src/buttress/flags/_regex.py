"""Refusing regular expressions that could backtrack catastrophically (the ``matches`` operator).

Python's ``re`` matches by backtracking: on text it does not match, it tries one
after another every way the pattern could have been partway through the text.
``(a+)+$`` has exponentially many ways through ``aaaa...!`` and ``\\d+\\d+x``
quadratically many, so one attribute value of a few dozen characters, chosen
by whoever sends it, can hold the process for seconds or for years.

``refusal(pattern)`` says why a pattern is refused, or None. It reads the
pattern with Python's own parser and builds the automaton the matcher walks:
one state per character the pattern consumes, and an edge, counted with its
multiplicity, for every way from one to the next (``(a+)+`` has two ways from
``a`` back to ``a``: the inner loop and the outer one). It then walks that
automaton over every kind of text at once, counting for each text the ways the
pattern can be partway through it, which is the work backtracking does:

- a count that grows without bound (``_MAX_WAYS``) means nested repetition
  (two ways around one loop: exponential) or overlapping repetitions (two
  loops in a row over the same characters: a power of the text's length);
- a count that stays bounded bounds the work at one starting position by
  ``_TRANSIENT + _SUSTAINED * len(text)``; patterns above either are refused.

Where exactness would cost much, the check over-approximates (more ways than
there are, never fewer): character categories in large ranges of code points
are assumed present, case-insensitive matching beyond ASCII is taken to match
any non-ASCII character, and repetitions too long to unroll (``_UNROLL``) are read
as unbounded. A safe pattern may so be refused; an unsafe one is not accepted.
Backreferences are refused outright (matching them is not regular), and so are
lookarounds whose body repeats without bound. No I/O; results are memoised.
"""

from __future__ import annotations

import bisect
import functools
import importlib
import re
import warnings
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from types import ModuleType
from typing import Any, Final, NamedTuple, TypeVar

__all__ = [
    "AMBIGUOUS",
    "BACKREFERENCE",
    "LOOKAROUND",
    "MAX_PATTERN",
    "MAX_TEXT",
    "NESTED",
    "OVERLAPPING",
    "TOO_COMPLEX",
    "TOO_LONG",
    "refusal",
]

MAX_PATTERN: Final = 500
"""The longest pattern ``matches`` accepts, in characters."""
MAX_TEXT: Final = 1_000
"""The longest attribute value ``matches`` looks at; a longer one does not apply."""

_UNROLL: Final = 64
"""A counted repetition is unrolled exactly when that takes at most this many states
(``\\d{1,3}``: 3, ``[0-9a-f]{32}``: 32); a larger one is read as unbounded."""
_MAX_POSITIONS: Final = 2_000
"""States the automaton may have; more is refused as too complex to check."""
_MAX_WAYS: Final = 256
"""Ways at once past which the count is taken to grow without bound."""
_SUSTAINED: Final = 3
"""Most ways per character, on average, text can keep the matcher busy with."""
_TRANSIENT: Final = 10_000
"""Most ways, summed, text can cost on top of that."""
_MAX_VECTORS: Final = 20_000
_MAX_EFFORT: Final = 1_000_000
"""Steps the walk may take (about a second at most); more is refused as too complex."""
_KARP: Final = 400
_MAX_PAIRS: Final = 200_000

NESTED: Final = (
    "a regular expression with nested repetition could take exponential time "
    "(a repeated part can match the same text in more than one way, as in (a+)+, "
    "(a|a)* or (a?b?)*)"
)
OVERLAPPING: Final = (
    "a regular expression with overlapping repetitions could take time growing with a "
    "power of the text's length (repetitions that can match the same characters follow "
    "each other, as in \\d+\\d+, .*a.*b or (a?){16}a{16}); make them match different "
    "characters, or drop a leading .* (matches searches anywhere in the text already)"
)
AMBIGUOUS: Final = (
    "a regular expression that can be partway through the same text in too many ways at "
    "once could take a long time on long text; simplify its repetitions or alternatives"
)
BACKREFERENCE: Final = (
    "a regular expression with a backreference (\\1, (?P=name) or (?(1)...)) could take "
    "exponential time and is not accepted"
)
LOOKAROUND: Final = (
    "a lookahead or lookbehind that repeats without bound could take time growing with "
    "the square of the text's length and is not accepted"
)
TOO_LONG: Final = f"a regular expression longer than {MAX_PATTERN} characters is not accepted"
TOO_COMPLEX: Final = (
    "a regular expression too complex to check for catastrophic backtracking is not "
    "accepted; simplify it"
)


def _load_parser() -> ModuleType:
    try:
        return importlib.import_module("re._parser")  # Python 3.11+
    except ImportError:  # pragma: no cover - an interpreter that moved it back
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return importlib.import_module("sre_parse")


_PARSER: Final[Any] = _load_parser()
_UNBOUNDED: Final[int] = _PARSER.MAXREPEAT
_TOP: Final = 0x10FFFF

# -- character sets ----------------------------------------------------------------------
# A set of characters is inclusive code point ranges, plus categories (\d \w \s, maybe
# negated, in Unicode or ASCII mode), maybe negated as a whole. The alphabet the
# automaton is walked over is "abstract characters": an interval of code points between
# every boundary any set has, times the category class of a character in it.

_DIGIT, _WORD, _SPACE, _OTHER = 0, 1, 2, 3
"""Category classes: \\d, \\w but not \\d, \\s, none of them (they partition the characters)."""
_CLASS_PATTERNS: Final = (
    (_DIGIT, re.compile(r"\d")),
    (_WORD, re.compile(r"[^\W\d]")),
    (_SPACE, re.compile(r"\s")),
    (_OTHER, re.compile(r"[^\w\s]")),
)
_ASCII_CLASS_PATTERNS: Final = tuple(
    (kind, re.compile(pattern.pattern, re.ASCII)) for kind, pattern in _CLASS_PATTERNS
)
_ASCII_EDGES: Final = (0x09, 0x0A, 0x0B, 0x0E, 0x1C, 0x20, 0x21, 0x30, 0x3A, 0x41, 0x5B, 0x5F)
_ASCII_EDGES_2: Final = (0x60, 0x61, 0x7B, 0x80)
_SMALL_INTERVAL: Final = 4_096
"""Intervals up to this many code points are scanned for the classes they hold; larger
ones are assumed to hold all four."""

# The only characters beyond ASCII that match an ASCII letter ignoring case.
_FOLDS_BEYOND_ASCII: Final = ((0x130, "iI"), (0x131, "iI"), (0x17F, "sS"), (0x212A, "kK"))

Ranges = tuple[tuple[int, int], ...]


class CharSet(NamedTuple):
    ranges: Ranges
    categories: frozenset[tuple[int, bool, bool]]
    """``(kind, negated, ascii)`` with kind ``_DIGIT`` (\\d), ``_WORD`` (\\w) or ``_SPACE``."""
    negate: bool


def _normalise(ranges: Iterable[tuple[int, int]]) -> Ranges:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return tuple(merged)


def _fold(ranges: Ranges, *, widely: bool) -> Ranges:
    """``ranges`` with the characters that match them ignoring case.

    ``widely``: every such character or more (any non-ASCII character stands for
    its case partners); otherwise only the ASCII letters' other case, fewer than
    there may be (what a negated set needs to stay an over-approximation).
    """
    out = list(ranges)
    for lo, hi in ranges:
        for first, last, shift in ((0x41, 0x5A, 0x20), (0x61, 0x7A, -0x20)):
            low, high = max(lo, first), min(hi, last)
            if low <= high:
                out.append((low + shift, high + shift))
        if widely:
            if hi >= 0x80:
                out.append((0x80, _TOP))
            for special, letters in _FOLDS_BEYOND_ASCII:
                codes = [ord(letter) for letter in letters]
                if lo <= special <= hi:
                    out.extend((code, code) for code in codes)
                if any(lo <= code <= hi for code in codes):
                    out.append((special, special))
    return _normalise(out)


_CATEGORIES: Final = {
    "CATEGORY_DIGIT": (_DIGIT, False),
    "CATEGORY_NOT_DIGIT": (_DIGIT, True),
    "CATEGORY_WORD": (_WORD, False),
    "CATEGORY_NOT_WORD": (_WORD, True),
    "CATEGORY_SPACE": (_SPACE, False),
    "CATEGORY_NOT_SPACE": (_SPACE, True),
}


def _charset(op: str, av: Any, flags: int) -> CharSet:
    """The set of characters one parsed item (LITERAL, NOT_LITERAL, ANY, IN) matches."""
    ignore_case = bool(flags & re.IGNORECASE)
    ascii_mode = bool(flags & re.ASCII)
    if op == "ANY":
        if flags & re.DOTALL:
            return CharSet(((0, _TOP),), frozenset(), False)
        return CharSet(((0, 0x09), (0x0B, _TOP)), frozenset(), False)
    if op in ("LITERAL", "NOT_LITERAL"):
        items: list[tuple[str, Any]] = [("LITERAL", av)]
        negate = op == "NOT_LITERAL"
    else:
        items = [(item_op.name, item_av) for item_op, item_av in av]
        negate = bool(items) and items[0][0] == "NEGATE"
    ranges: list[tuple[int, int]] = []
    categories: set[tuple[int, bool, bool]] = set()
    for name, value in items:
        if name == "LITERAL":
            ranges.append((value, value))
        elif name == "RANGE":
            ranges.append((value[0], value[1]))
        elif name == "CATEGORY":
            kind, negated = _CATEGORIES.get(value.name, (_OTHER, True))
            if kind == _OTHER:  # an unknown category: assume it matches anything
                ranges.append((0, _TOP))
            else:
                categories.add((kind, negated, ascii_mode))
        elif name != "NEGATE":  # an item this check does not know: assume anything
            ranges.append((0, _TOP))
    folded = _normalise(ranges)
    if ignore_case:
        folded = _fold(folded, widely=not negate)
    return CharSet(folded, frozenset(categories), negate)


class _Alphabet:
    """Abstract characters (interval, Unicode class, ASCII-mode class) and who holds each."""

    def __init__(self, sets: Sequence[CharSet]) -> None:
        edges = {0, _TOP + 1, *_ASCII_EDGES, *_ASCII_EDGES_2}
        for charset in sets:
            for lo, hi in charset.ranges:
                edges.update((lo, hi + 1))
        self.edges = sorted(edges)
        self.chars: list[tuple[int, int, int]] = []
        """``(interval index, class, ASCII-mode class)``."""
        self.by_interval: list[list[int]] = []
        for index, lo in enumerate(self.edges[:-1]):
            hi = self.edges[index + 1]
            first = len(self.chars)
            for unicode_class, ascii_class in _classes(lo, hi):
                self.chars.append((index, unicode_class, ascii_class))
            self.by_interval.append(list(range(first, len(self.chars))))

    def members(self, charset: CharSet) -> set[int]:
        if not charset.negate and not charset.categories:
            found: set[int] = set()
            for lo, hi in charset.ranges:
                start = bisect.bisect_left(self.edges, lo)
                end = bisect.bisect_left(self.edges, hi + 1)
                for interval in range(start, end):
                    found.update(self.by_interval[interval])
            return found
        starts = [lo for lo, _hi in charset.ranges]
        result: set[int] = set()
        for char, (interval, unicode_class, ascii_class) in enumerate(self.chars):
            code = self.edges[interval]
            at = bisect.bisect_right(starts, code) - 1
            held = at >= 0 and code <= charset.ranges[at][1]
            if not held:
                for kind, negated, ascii_mode in charset.categories:
                    klass = ascii_class if ascii_mode else unicode_class
                    inside = klass == kind or (kind == _WORD and klass == _DIGIT)
                    if inside != negated:
                        held = True
                        break
            if held != charset.negate:
                result.add(char)
        return result


def _classes(lo: int, hi: int) -> list[tuple[int, int]]:
    """The ``(class, ASCII-mode class)`` pairs found (or assumed) in ``[lo, hi)``."""
    if hi <= 0x80:  # ASCII edges make every ASCII interval one class in both modes
        char = chr(lo)
        return [(_class_of(char, _CLASS_PATTERNS), _class_of(char, _ASCII_CLASS_PATTERNS))]
    if lo < 0x80:  # pragma: no cover - 0x80 is always an edge
        raise AssertionError("an interval straddles ASCII")
    if hi - lo > _SMALL_INTERVAL:
        return [(kind, _OTHER) for kind in (_DIGIT, _WORD, _SPACE, _OTHER)]
    text = "".join(map(chr, range(lo, hi)))
    return [(kind, _OTHER) for kind, pattern in _CLASS_PATTERNS if pattern.search(text)]


def _class_of(char: str, patterns: Sequence[tuple[int, re.Pattern[str]]]) -> int:
    return next(kind for kind, pattern in patterns if pattern.match(char))


# -- the automaton -----------------------------------------------------------------------
# Glushkov's construction, with multiplicities: a fragment of the pattern is described by
# the ways it can match nothing, the states it can start and end in (counted), the states
# after which it may end the match cleanly (no assertion left to pass), and it adds its
# inner edges to ``follow``. Multiplicities count the distinct ways backtracking has from
# one state to the next, e.g. through a loop inside a loop, or past two empty branches.


class _Refused(Exception):
    def __init__(self, rule: str) -> None:
        super().__init__(rule)
        self.rule = rule


class _Fragment(NamedTuple):
    empty_ways: int
    clean: bool
    first: Counter[int]
    last: Counter[int]
    final: frozenset[int]


_NOTHING: Final = _Fragment(1, True, Counter(), Counter(), frozenset())
_ASSERTION: Final = _Fragment(1, False, Counter(), Counter(), frozenset())


def _times(counts: Counter[int], factor: int) -> Counter[int]:
    if factor == 0:
        return Counter()
    return Counter({key: min(count * factor, _MAX_WAYS + 1) for key, count in counts.items()})


def _plus(*counters: Counter[int]) -> Counter[int]:
    total: Counter[int] = Counter()
    for counter in counters:
        for key, count in counter.items():
            total[key] = min(total[key] + count, _MAX_WAYS + 1)
    return total


class _Automaton:
    def __init__(self) -> None:
        self.sets: dict[CharSet, int] = {}
        self.set_of: list[int] = [-1]  # state 0 is the start
        self.follow: list[Counter[int]] = [Counter()]

    # -- building ------------------------------------------------------------------------

    def sequence(self, items: Any, flags: int) -> _Fragment:
        result = _NOTHING
        for op, av in items:
            result = self._then(result, self._item(op.name, av, flags))
        return result

    def _link(self, last: Counter[int], first: Counter[int]) -> None:
        """Edges from every state of ``last`` to every state of ``first``, counted."""
        for state, count in last.items():
            edges = self.follow[state]
            for target, ways in first.items():
                edges[target] = min(edges[target] + count * ways, _MAX_WAYS + 1)

    def _then(self, before: _Fragment, after: _Fragment) -> _Fragment:
        self._link(before.last, after.first)
        return _Fragment(
            min(before.empty_ways * after.empty_ways, _MAX_WAYS + 1),
            before.clean and after.clean,
            _plus(before.first, _times(after.first, before.empty_ways)),
            _plus(after.last, _times(before.last, after.empty_ways)),
            after.final | before.final if after.clean else after.final,
        )

    def _item(self, op: str, av: Any, flags: int) -> _Fragment:
        if op in ("LITERAL", "NOT_LITERAL", "ANY", "IN"):
            return self._state(_charset(op, av, flags))
        if op == "SUBPATTERN":
            _group, add, remove, items = av
            return self.sequence(items, (flags | add) & ~remove)
        if op == "ATOMIC_GROUP":
            return self.sequence(av, flags)
        if op == "BRANCH":
            return self._either([self.sequence(branch, flags) for branch in av[1]])
        if op in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, items = av
            return self._repeat(items, low, high, flags)
        if op == "AT":
            return _ASSERTION
        if op in ("ASSERT", "ASSERT_NOT"):
            _direction, items = av
            if _unbounded(items):
                raise _Refused(LOOKAROUND)
            rule = _analyse(items, flags)  # matched on its own wherever it is reached
            if rule is not None:
                raise _Refused(rule)
            return _ASSERTION
        if op in ("GROUPREF", "GROUPREF_EXISTS"):
            raise _Refused(BACKREFERENCE)
        raise _Refused(TOO_COMPLEX)  # pragma: no cover - an opcode this check does not know

    def _state(self, charset: CharSet) -> _Fragment:
        if len(self.set_of) > _MAX_POSITIONS:
            raise _Refused(TOO_COMPLEX)
        state = len(self.set_of)
        self.set_of.append(self.sets.setdefault(charset, len(self.sets)))
        self.follow.append(Counter())
        here = Counter({state: 1})
        return _Fragment(0, False, here, Counter(here), frozenset({state}))

    def _either(self, branches: Sequence[_Fragment]) -> _Fragment:
        return _Fragment(
            min(sum(b.empty_ways for b in branches), _MAX_WAYS + 1),
            any(b.clean for b in branches),
            _plus(*(b.first for b in branches)),
            _plus(*(b.last for b in branches)),
            frozenset().union(*(b.final for b in branches)),
        )

    def _optional(self, body: _Fragment) -> _Fragment:
        return _Fragment(
            min(1 + body.empty_ways, _MAX_WAYS + 1), True, body.first, body.last, body.final
        )

    def _loop(self, body: _Fragment) -> _Fragment:
        self._link(body.last, body.first)
        return self._optional(body)

    def _repeat(self, items: Any, low: int, high: int, flags: int) -> _Fragment:
        if not _read_as_unbounded(_size(items), high):
            result = _NOTHING
            for _ in range(low):
                result = self._then(result, self.sequence(items, flags))
            if high > low:
                result = self._then(result, self._optional_chain(items, high - low, flags))
            return result
        # Read as "at least min(low, 1), then any number more": every way the real
        # repetition has is a way this one has. Where it would let the match end
        # earlier than the real one can, it does not claim the match can end there.
        copies = min(low, 1)
        result = _NOTHING
        for _ in range(copies):
            result = self._then(result, self.sequence(items, flags))
        result = self._then(result, self._loop(self.sequence(items, flags)))
        if copies < low:
            result = result._replace(final=frozenset())
        return result

    def _optional_chain(self, items: Any, count: int, flags: int) -> _Fragment:
        # x{0,3} is (x(x(x)?)?)?: each further copy is tried only after the one before.
        result = self._optional(self.sequence(items, flags))
        for _ in range(count - 1):
            result = self._optional(self._then(self.sequence(items, flags), result))
        return result


def _size(items: Any) -> int:
    """How many states one copy of ``items`` makes."""
    total = 0
    for op, av in items:
        name = op.name
        if name in ("LITERAL", "NOT_LITERAL", "ANY", "IN"):
            total += 1
        elif name == "SUBPATTERN":
            total += _size(av[3])
        elif name == "ATOMIC_GROUP":
            total += _size(av)
        elif name == "BRANCH":
            total += sum(_size(branch) for branch in av[1])
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, body = av
            size = _size(body)
            total += size * (min(low, 1) + 1 if _read_as_unbounded(size, high) else high)
    return total


def _read_as_unbounded(size: int, high: int) -> bool:
    """Whether a repetition of ``size`` states up to ``high`` times is checked as
    unbounded (it is, or unrolling it would take more than ``_UNROLL`` states)."""
    return high == _UNBOUNDED or size * high > _UNROLL


def _unbounded(items: Any) -> bool:
    """Whether ``items`` holds a repetition read as unbounded."""
    for op, av in items:
        name = op.name
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            inside = [av[2]]
            if _read_as_unbounded(_size(av[2]), av[1]):
                return True
        elif name == "SUBPATTERN":
            inside = [av[3]]
        elif name == "ATOMIC_GROUP":
            inside = [av]
        elif name == "BRANCH":
            inside = list(av[1])
        elif name in ("ASSERT", "ASSERT_NOT"):
            inside = [av[1]]
        else:
            continue
        if any(_unbounded(part) for part in inside):
            return True
    return False


# -- walking it over every text ----------------------------------------------------------


def _analyse(items: Any, flags: int) -> str | None:
    automaton = _Automaton()
    try:
        whole = automaton.sequence(items, flags)
    except _Refused as refused:
        return refused.rule
    follow = automaton.follow
    follow[0] = whole.first
    finals = set(whole.final) | ({0} if whole.clean else set())
    absorbing = _absorbing(follow, finals)
    # From an absorbing state the match has already succeeded: search stops there.
    successors = [Counter() if state in absorbing else edges for state, edges in enumerate(follow)]
    sets = list(automaton.sets)
    alphabet = _Alphabet(sets)
    held_by: dict[int, set[int]] = {}  # abstract character -> the sets holding it
    for index, charset in enumerate(sets):
        for char in alphabet.members(charset):
            held_by.setdefault(char, set()).add(index)
    letters = {frozenset(holders) for holders in held_by.values()}
    return _walk(successors, automaton.set_of, letters)


def _absorbing(follow: Sequence[Counter[int]], finals: set[int]) -> set[int]:
    """The final states whose every successor is too: once there, the match succeeds."""
    absorbing = set(finals)
    changed = True
    while changed:
        changed = False
        for state in tuple(absorbing):
            if any(target not in absorbing for target in follow[state]):
                absorbing.discard(state)
                changed = True
    return absorbing


Node = TypeVar("Node", bound=Hashable)
Vector = tuple[tuple[int, int], ...]
"""``(state, ways)`` pairs, sorted: how many ways the pattern is in each state."""


def _link(
    graph: dict[Node, set[Node]], source: Node, target: Node, todo: list[Node], cap: int
) -> bool:
    """Add the edge ``source -> target`` to a graph being explored, queueing ``target``
    in ``todo`` when it is new; False, adding nothing, once ``cap`` nodes are reached."""
    if target not in graph:
        if len(graph) >= cap:
            return False
        graph[target] = set()
        todo.append(target)
    graph[source].add(target)
    return True


def _walk(
    successors: Sequence[Counter[int]], set_of: Sequence[int], letters: Iterable[frozenset[int]]
) -> str | None:
    letters = tuple(letters)
    start: Vector = ((0, 1),)
    edges: dict[Vector, set[Vector]] = {start: set()}
    todo = [start]
    effort = 0
    while todo:
        vector = todo.pop()
        effort += len(letters) + len(vector)
        if effort > _MAX_EFFORT:
            return TOO_COMPLEX
        targets: Counter[int] = Counter()
        for state, ways in vector:
            for target, count in successors[state].items():
                targets[target] += ways * count
        if not targets:
            continue
        target_sets = {set_of[target] for target in targets}
        for sets in {letter & target_sets for letter in letters}:
            if not sets:
                continue
            after = tuple(sorted((t, n) for t, n in targets.items() if set_of[t] in sets))
            if _ways(after) > _MAX_WAYS:
                return NESTED if _exponential(successors, set_of, letters) else OVERLAPPING
            if not _link(edges, vector, after, todo, _MAX_VECTORS):
                return TOO_COMPLEX
    sustained, transient = _work(edges)
    return AMBIGUOUS if sustained > _SUSTAINED or transient > _TRANSIENT else None


def _work(edges: dict[Vector, set[Vector]]) -> tuple[float, int]:
    """How much backtracking work text can cause at one starting position.

    Walking text is walking this graph of vectors, doing a vector's ways of work at
    each step. Any walk is simple cycles plus a path through each component once,
    so its work is at most ``sustained`` per character (the most ways per step of
    any cycle, on average) plus ``transient`` (the most a path through the
    components can spend, a cyclic component counted as its size times its most
    ways).
    """
    components = _components(edges)
    component_of = {node: index for index, nodes in enumerate(components) for node in nodes}
    sustained = 0.0
    longest: list[int] = []
    # Tarjan's order is reverse topological: a component's successors come before it.
    for index, nodes in enumerate(components):
        weight = max(_ways(node) for node in nodes)
        if len(nodes) > 1 or nodes[0] in edges[nodes[0]]:  # on a cycle
            # The mean is at most the most; Karp's algorithm only when that is too many.
            mean = weight if weight <= _SUSTAINED else _mean_cycle(nodes, edges)
            sustained = max(sustained, mean)
            weight *= len(nodes)
        after = (
            longest[component_of[target]]
            for node in nodes
            for target in edges[node]
            if component_of[target] != index
        )
        longest.append(weight + max(after, default=0))
    return sustained, max(longest, default=0)


def _ways(vector: Vector) -> int:
    return sum(ways for _state, ways in vector)


def _mean_cycle(nodes: Sequence[Vector], edges: Mapping[Vector, set[Vector]]) -> float:
    """The most ways per step of any cycle in this strongly connected component
    (Karp's maximum mean cycle); for a very large one, its most ways at once."""
    count = len(nodes)
    if count > _KARP:
        return max(_ways(node) for node in nodes)
    index = {node: position for position, node in enumerate(nodes)}
    weights = [_ways(node) for node in nodes]
    inside = [[index[t] for t in edges[node] if t in index] for node in nodes]
    none = -1.0
    # best[k][v]: the most ways summed over a walk of k steps from node 0 to node v.
    best = [[none] * count for _ in range(count + 1)]
    best[0][0] = 0.0
    for steps in range(1, count + 1):
        before, now = best[steps - 1], best[steps]
        for source in range(count):
            if before[source] < 0:
                continue
            for target in inside[source]:
                now[target] = max(now[target], before[source] + weights[target])
    mean = 0.0
    for node in range(count):
        if best[count][node] < 0:
            continue
        mean = max(
            mean,
            min(
                (best[count][node] - best[steps][node]) / (count - steps)
                for steps in range(count)
                if best[steps][node] >= 0
            ),
        )
    return mean


def _components(edges: Mapping[Node, set[Node]]) -> list[list[Node]]:
    """Strongly connected components, iteratively (Tarjan), successors first."""
    index_of: dict[Node, int] = {}
    low: dict[Node, int] = {}
    stack: list[Node] = []
    on_stack: set[Node] = set()
    components: list[list[Node]] = []
    for root in edges:
        if root in index_of:
            continue
        work = [(root, iter(edges[root]))]
        index_of[root] = low[root] = len(index_of)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index_of:
                    index_of[child] = low[child] = len(index_of)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges[child])))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index_of[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index_of[node]:
                    component: list[Node] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(component)
    return components


def _exponential(
    successors: Sequence[Counter[int]], set_of: Sequence[int], letters: Sequence[frozenset[int]]
) -> bool:
    """Whether some state has two different ways around a loop over the same text.

    In the product of the automaton with itself, a pair of equal states ``(p, p)``
    that can come back to itself through an unequal pair, or through two different
    edges between the same states, is exactly that. Too large to tell: assumed so.
    """
    together: dict[int, set[int]] = {}
    for index, letter in enumerate(letters):
        for charset in letter:
            together.setdefault(charset, set()).add(index)

    def compatible(a: int, b: int) -> bool:
        return bool(together.get(set_of[a], set()) & together.get(set_of[b], set()))

    pairs: dict[tuple[int, int], set[tuple[int, int]]] = {}
    todo = [(state, state) for state in range(len(successors)) if successors[state]]
    for pair in todo:
        pairs[pair] = set()
    while todo:
        p, q = pair = todo.pop()
        for p2 in successors[p]:
            for q2 in successors[q]:
                if not compatible(p2, q2):
                    continue
                if not _link(pairs, pair, (p2, q2), todo, _MAX_PAIRS):
                    return True
    for component in _components(pairs):
        members = set(component)
        diagonal = [pair for pair in members if pair[0] == pair[1]]
        if not diagonal:
            continue
        if len(members) > 1 and any(p != q for p, q in members):
            return True
        for p, q in diagonal:
            if any(
                target in members and successors[p][target[0]] > 1
                for target in pairs[(p, q)]
                if target[0] == target[1]
            ):
                return True
    return False


@functools.lru_cache(maxsize=1024)
def refusal(pattern: str) -> str | None:
    """Why ``pattern`` could backtrack catastrophically, or None if it cannot.

    ``pattern`` must compile (``re.compile``); the check is memoised.
    """
    if len(pattern) > MAX_PATTERN:
        return TOO_LONG
    parsed = _PARSER.parse(pattern)
    try:
        return _analyse(parsed, parsed.state.flags)
    except RecursionError:  # nested deeper than this check can follow
        return TOO_COMPLEX
