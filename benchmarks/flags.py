"""Flag evaluation cost: buttress ``is_enabled`` beside the usual Python flag libraries.

Three rows, each a sync evaluation from an in-memory snapshot in one process:
a plain on flag, a flag targeting a user list (asked for a listed user), and a
50% rollout bucketed on the user id. Peers that are not installed are skipped
(``pip install 'buttress[bench]'`` installs them). Prints per-call medians and
each peer's cost as a multiple of buttress's.

    python benchmarks/flags.py [--quick] [--baseline SRC]

A second table measures targeting: rules over context attributes (equals, in,
a semantic-version comparison, a regular expression, a negation), a split
across variants and a typed read, each as a multiple of the plain flag.
A third table shows why ``matches`` refuses some regular expressions: ``re.search``
time for patterns the check refuses, on growing text (exponential and polynomial
growth), beside the slowest text found for accepted patterns at the longest value
``matches`` looks at (``MAX_TEXT``), and what the check itself costs per pattern.

``--baseline SRC`` (a ``src`` directory of another buttress checkout, e.g.
``git archive main src | tar -x -C /tmp/main``) measures the three buttress
rows there too, in a subprocess, and prints this checkout's cost as a ratio of
it: plain evaluation must not slow down because targeting exists.

With ``BUTTRESS_BENCH_POSTGRES_DSN`` set it also measures propagation: 100
changes through one ``FeatureFlags`` instance, timed until a second instance
(its own pool, push only) sees each one; median and p99 are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from buttress.flags import FeatureFlags, Flag, FlagContext

try:  # absent from a baseline checkout older than targeting
    from buttress.flags import Condition, Rule
except ImportError:  # pragma: no cover - only under --baseline
    Condition = Rule = None  # type: ignore[assignment,misc]

ROWS = ("plain", "targeted", "rollout 50%")
TARGET_USER = "alice"
ROLLOUT_USER = "user-42"

Probe = Callable[[], object]
Suite = dict[str, Probe]


def median_ns(probe: Probe, repeats: int, number: int) -> float:
    probe()  # warm caches (bucket memo, peers' lazy set-up)
    runs = timeit.repeat(probe, number=number, repeat=repeats)
    return statistics.median(runs) / number * 1e9


def buttress_suite() -> Suite:
    flags = FeatureFlags(refresh_interval=None)

    async def load() -> None:
        await flags.start()
        await flags.upsert(Flag("plain", "Plain", enabled=True))
        await flags.upsert(Flag("targeted", "Targeted", enabled=True, users={TARGET_USER}))
        await flags.upsert(Flag("rollout", "Rollout", enabled=True, percentage=50))

    asyncio.run(load())
    is_enabled = flags.is_enabled
    target = FlagContext(TARGET_USER)
    rollout = FlagContext(ROLLOUT_USER)
    # A targeted flag with a user list and no percentage is on only for listed users.
    return {
        "plain": lambda: is_enabled("plain"),
        "targeted": lambda: is_enabled("targeted", target),
        "rollout 50%": lambda: is_enabled("rollout", rollout),
    }


def openfeature_suite() -> Suite:
    from openfeature import api
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.flag_evaluation import FlagResolutionDetails, Reason
    from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider

    def targeted(flag: InMemoryFlag[bool], ctx: EvaluationContext) -> FlagResolutionDetails[bool]:
        hit = ctx.targeting_key == TARGET_USER
        return FlagResolutionDetails(value=hit, reason=Reason.TARGETING_MATCH)

    def rollout(flag: InMemoryFlag[bool], ctx: EvaluationContext) -> FlagResolutionDetails[bool]:
        digest = hashlib.blake2b(f"rollout\0{ctx.targeting_key}".encode(), digest_size=8)
        on = int.from_bytes(digest.digest(), "big") % 10_000 < 5_000
        return FlagResolutionDetails(value=on, reason=Reason.SPLIT)

    variants = {"on": True, "off": False}
    api.set_provider(
        InMemoryProvider(
            {
                "plain": InMemoryFlag("on", variants),
                "targeted": InMemoryFlag("off", variants, context_evaluator=targeted),
                "rollout": InMemoryFlag("off", variants, context_evaluator=rollout),
            }
        )
    )
    client = api.get_client()
    target = EvaluationContext(targeting_key=TARGET_USER)
    user = EvaluationContext(targeting_key=ROLLOUT_USER)
    return {
        "plain": lambda: client.get_boolean_value("plain", False),
        "targeted": lambda: client.get_boolean_value("targeted", False, target),
        "rollout 50%": lambda: client.get_boolean_value("rollout", False, user),
    }


def growthbook_suite() -> Suite:
    from growthbook import GrowthBook

    features: dict[str, Any] = {
        "plain": {"defaultValue": True},
        "targeted": {
            "defaultValue": False,
            "rules": [{"condition": {"id": {"$in": [TARGET_USER]}}, "force": True}],
        },
        "rollout": {
            "defaultValue": False,
            "rules": [{"force": True, "coverage": 0.5, "hashAttribute": "id"}],
        },
    }
    target = GrowthBook(attributes={"id": TARGET_USER}, features=features)
    user = GrowthBook(attributes={"id": ROLLOUT_USER}, features=features)
    return {
        "plain": lambda: user.is_on("plain"),
        "targeted": lambda: target.is_on("targeted"),
        "rollout 50%": lambda: user.is_on("rollout"),
    }


def unleash_suite() -> Suite:
    from UnleashClient.cache import FileCache
    from UnleashClient.clients.unleash_client import UnleashClient

    logging.getLogger("UnleashClient").setLevel(logging.CRITICAL)
    cache = FileCache("buttress-bench", directory=tempfile.mkdtemp())
    cache.bootstrap_from_dict(
        {
            "version": 1,
            "features": [
                {"name": "plain", "enabled": True, "strategies": [{"name": "default"}]},
                {
                    "name": "targeted",
                    "enabled": True,
                    "strategies": [{"name": "userWithId", "parameters": {"userIds": TARGET_USER}}],
                },
                {
                    "name": "rollout",
                    "enabled": True,
                    "strategies": [
                        {
                            "name": "flexibleRollout",
                            "parameters": {
                                "rollout": "50",
                                "stickiness": "userId",
                                "groupId": "rollout",
                            },
                        }
                    ],
                },
            ],
        }
    )
    client = UnleashClient(
        url="http://127.0.0.1:9",
        app_name="buttress-bench",
        disable_metrics=True,
        disable_registration=True,
        cache=cache,
    )
    client.initialize_client(fetch_toggles=False)
    target = {"userId": TARGET_USER}
    user = {"userId": ROLLOUT_USER}
    return {
        "plain": lambda: client.is_enabled("plain"),
        "targeted": lambda: client.is_enabled("targeted", target),
        "rollout 50%": lambda: client.is_enabled("rollout", user),
    }


def flagsmith_suite() -> Suite:
    from flagsmith import Flagsmith

    def state(feature_id: int, name: str, enabled: bool, n: int) -> dict[str, Any]:
        return {
            "enabled": enabled,
            "feature_state_value": None,
            "feature": {"id": feature_id, "name": name},
            "featurestate_uuid": f"00000000-0000-0000-0000-{n:012d}",
            "multivariate_feature_state_values": [],
        }

    rollout_on = state(3, "rollout", True, 4)
    rollout_on["feature_segment"] = {"priority": 0}
    document: dict[str, Any] = {
        "api_key": "bench",
        "name": "bench",
        "feature_states": [
            state(1, "plain", True, 1),
            state(2, "targeted", False, 2),
            state(3, "rollout", False, 3),
        ],
        "identity_overrides": [
            {"identifier": TARGET_USER, "identity_features": [state(2, "targeted", True, 5)]}
        ],
        "project": {
            "segments": [
                {
                    "id": 1,
                    "name": "half",
                    "rules": [
                        {
                            "type": "ALL",
                            "rules": [],
                            "conditions": [
                                {"operator": "PERCENTAGE_SPLIT", "property_": "", "value": "50"}
                            ],
                        }
                    ],
                    "feature_states": [rollout_on],
                }
            ]
        },
    }

    class Offline:
        def get_environment(self) -> dict[str, Any]:
            return document

    client = Flagsmith(offline_mode=True, offline_handler=Offline())  # type: ignore[arg-type]  # a dict document is what it reads
    return {
        "plain": lambda: client.get_environment_flags().is_feature_enabled("plain"),
        "targeted": lambda: client.get_identity_flags(TARGET_USER).is_feature_enabled("targeted"),
        "rollout 50%": lambda: client.get_identity_flags(ROLLOUT_USER).is_feature_enabled(
            "rollout"
        ),
    }


TARGETING_ROWS = (
    "plain (is_enabled)",
    "rule: 3 conditions",
    "rule: regex",
    "rule: negated, no match",
    "split: get_string",
    "rule: evaluate()",
)


def targeting_suite() -> Suite:
    """Targeting rows over one snapshot; every rule matches unless its row says otherwise."""
    flags = FeatureFlags(refresh_interval=None)
    three = Rule(
        [
            Condition("plan", "equals", "pro"),
            Condition("country", "in", ["FR", "DE", "NL"]),
            Condition("app_version", "semver_gte", "2.1.0"),
        ]
    )
    regex = Rule([Condition("email", "matches", r"@(acme|example)\.com$")])
    negated = Rule([Condition("country", "in", ["FR", "DE"], negate=True)])

    async def load() -> None:
        await flags.start()
        await flags.upsert(Flag("plain", "Plain", enabled=True))
        for key, rule in (("three", three), ("regex", regex), ("negated", negated)):
            # On where the rule matches, off elsewhere.
            await flags.upsert(Flag(key, key, enabled=True, default_variant="off", rules=[rule]))
        await flags.upsert(
            Flag(
                "split",
                "Split",
                enabled=True,
                variants={"a": "A", "b": "B", "c": "C"},
                split={"a": 20, "b": 30, "c": 50},
                default_variant="a",
            )
        )

    asyncio.run(load())
    is_enabled, evaluate, get_string = flags.is_enabled, flags.evaluate, flags.get_string
    context = FlagContext(
        ROLLOUT_USER,
        attributes={
            "plan": "pro",
            "country": "FR",
            "app_version": "2.3.1",
            "email": "ann@example.com",
        },
    )
    return {
        "plain (is_enabled)": lambda: is_enabled("plain"),
        "rule: 3 conditions": lambda: is_enabled("three", context),
        "rule: regex": lambda: is_enabled("regex", context),
        "rule: negated, no match": lambda: is_enabled("negated", context),
        "split: get_string": lambda: get_string("split", "?", context),
        "rule: evaluate()": lambda: evaluate("three", context),
    }


def report_targeting(repeats: int, number: int) -> None:
    suite = targeting_suite()
    answers = {row: probe() for row, probe in suite.items()}
    print("\ntargeting answers:", {row: str(answer)[:40] for row, answer in answers.items()})
    times = {row: median_ns(probe, repeats, number) for row, probe in suite.items()}
    plain = times["plain (is_enabled)"]
    print(f"targeting: median ns per evaluation ({repeats} runs); ratio = row / plain")
    for row in TARGETING_ROWS:
        print(f"  {row:<26}{times[row]:>10,.0f} ns  ({times[row] / plain:.1f}x)")


REFUSED = (  # pattern, the unit its text repeats, the character that makes it fail, lengths
    ("(a+)+$", "a", "!", (16, 18, 20, 22)),
    (r"(\w+\s?)*$", "a", "!", (16, 18, 20, 22)),
    (r"\d+\d+x", "1", "!", (125, 250, 500, 1000)),
    (r".*a.*b", "a", "!", (125, 250, 500, 1000)),
)
ACCEPTED = (
    r"^[a-z0-9._%+-]+@example\.com$",
    r"(foo|bar)+",
    r"^v\d+\.\d+",
    r".*beta.*",
    r"(\w+\.)+com",
    r"[\w.]+@[\w.]+\.com",
    r"^v\d+(\.\d+)*$",
)


def search_ms(pattern: str, text: str, repeats: int = 3) -> float:
    """The best of ``repeats`` ``re.search`` calls, in milliseconds."""
    compiled = re.compile(pattern)
    return min(timeit.repeat(lambda: compiled.search(text), number=1, repeat=repeats)) * 1e3


def slowest_text(pattern: str, length: int) -> tuple[float, str]:
    """The slowest of a few hundred adversarial texts of ``length`` characters: a short
    unit over the pattern's characters, repeated, then one that may make it fail."""
    chars = sorted({c for c in pattern if c.isalnum() or c in ".@ -_"} | {"a", "1", " "})
    worst = (0.0, "")
    for size in (1, 2, 3):
        for unit in itertools.islice(itertools.product(chars, repeat=size), 60):
            for tail in ("!", "\n", ""):
                text = ("".join(unit) * length)[: length - len(tail)] + tail
                worst = max(worst, (search_ms(pattern, text, repeats=1), text[:6]))
    return worst


def report_patterns() -> None:
    """What the refused patterns would cost, beside the accepted ones at the cap."""
    from buttress.flags._regex import MAX_TEXT, refusal

    print("\nmatches: re.search time (best of 3) for refused patterns as text grows")
    for pattern, unit, tail, lengths in REFUSED:
        cells = "  ".join(
            f"{n:>5} chars {search_ms(pattern, unit * n + tail):>9,.2f} ms" for n in lengths
        )
        print(f"  {pattern:<22} {cells}")
    print(f"accepted patterns: the slowest text found of {MAX_TEXT} characters, and the check")
    uncached = refusal.__wrapped__
    for pattern in ACCEPTED:
        check = min(timeit.repeat(lambda p=pattern: uncached(p), number=1, repeat=5)) * 1e3  # type: ignore[misc]  # default binds the loop value
        assert refusal(pattern) is None, pattern
        worst, text = slowest_text(pattern, MAX_TEXT)
        print(f"  {pattern:<34} {worst:>7,.2f} ms on {text!r}...   check {check:,.2f} ms")


def _rows_in(src: str, repeats: int, number: int) -> dict[str, float]:
    """The buttress rows (best of ``repeats``) measured in a fresh process on ``src``."""
    environment = {**os.environ, "PYTHONPATH": src, "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, __file__, "--rows-json", "--repeats", str(repeats)]
    done = subprocess.run(
        [*command, "--number", str(number)],
        capture_output=True,
        text=True,
        env=environment,
        check=True,
    )
    rows: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return rows


def report_baseline(src: str, repeats: int, number: int, rounds: int = 4) -> None:
    """Plain evaluation here and on another checkout's ``src``, alternating processes.

    Each side runs in its own fresh process, ``rounds`` times in turn (A B A B...),
    and keeps its best time per row: on a shared, loaded machine the best of
    several interleaved runs is the least noisy estimate of what the code costs.
    """
    here_src = str(Path(__file__).resolve().parents[1] / "src")
    best: dict[str, dict[str, float]] = {"baseline": {}, "here": {}}
    for _ in range(rounds):
        for side, path in (("baseline", src), ("here", here_src)):
            for row, ns in _rows_in(path, repeats, number).items():
                best[side][row] = min(ns, best[side].get(row, ns))
    base, here = best["baseline"], best["here"]
    print(
        f"\nplain evaluation against the baseline at {src}: best of {rounds} alternating "
        "processes per side (ratio = this checkout / baseline)"
    )
    for row in ROWS:
        print(
            f"  {row:<14} baseline {base[row]:>7,.0f} ns   here {here[row]:>7,.0f} ns   "
            f"({here[row] / base[row]:.2f}x)"
        )


PEERS: dict[str, Callable[[], Suite]] = {
    "openfeature-sdk (in-memory)": openfeature_suite,
    "growthbook (local)": growthbook_suite,
    "UnleashClient (offline)": unleash_suite,
    "flagsmith (offline)": flagsmith_suite,
}


def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, for a smoke test")
    parser.add_argument("--baseline", metavar="SRC", help="another checkout's src to compare")
    parser.add_argument("--rows-json", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--number", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    repeats, number = (5, 2_000) if options.quick else (9, 20_000)
    repeats, number = options.repeats or repeats, options.number or number
    if options.rows_json:  # a --baseline subprocess: the buttress rows only, best of repeats
        mine = buttress_suite()
        for probe in mine.values():
            probe()
        best = {
            row: min(timeit.repeat(mine[row], number=number, repeat=repeats)) / number * 1e9
            for row in ROWS
        }
        print(json.dumps(best))
        return
    suites: dict[str, Suite] = {"buttress": buttress_suite()}
    for name, build in PEERS.items():
        try:
            suites[name] = build()
        except Exception as exc:
            print(f"skipping {name}: {type(exc).__name__}: {exc}")
    sanity = {name: [bool(suite[row]()) for row in ROWS] for name, suite in suites.items()}
    print("answers (plain, targeted, rollout):", sanity)

    results: dict[str, dict[str, float]] = {}
    for name, suite in suites.items():
        number_here = number if name == "buttress" else max(number // 10, 200)
        results[name] = {row: median_ns(suite[row], repeats, number_here) for row in ROWS}

    empty = median_ns(lambda: None, repeats, number)
    print(f"\ncalibration: calling an empty lambda costs {empty:,.0f} ns on this machine now")

    width = max(len(name) for name in suites) + 2
    print(f"\nmedian ns per evaluation ({repeats} runs); ratio = peer / buttress")
    print("library".ljust(width) + "".join(row.rjust(24) for row in ROWS))
    base = results["buttress"]
    for name, row_times in results.items():
        cells = []
        for row in ROWS:
            ns = row_times[row]
            ratio = "" if name == "buttress" else f" ({ns / base[row]:.1f}x)"
            cells.append(f"{ns:,.0f} ns{ratio}".rjust(24))
        print(name.ljust(width) + "".join(cells))
    for row in ROWS:
        peers = {name: t[row] for name, t in results.items() if name != "buttress"}
        if peers:
            fastest = min(peers, key=peers.__getitem__)
            print(
                f"{row}: buttress {base[row]:,.0f} ns; fastest peer {fastest} "
                f"{peers[fastest]:,.0f} ns = {peers[fastest] / base[row]:.1f}x"
            )
    report_targeting(repeats, number)
    report_patterns()
    if options.baseline:
        report_baseline(options.baseline, repeats, number)
    report_propagation()


async def until(flags: FeatureFlags, predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Wait until ``predicate()`` holds, woken by the instance's snapshot changes."""
    changed = asyncio.Event()
    unsubscribe = flags.on_change(lambda _keys: changed.set())
    try:
        async with asyncio.timeout(within):
            while not predicate():
                await changed.wait()
                changed.clear()
    finally:
        unsubscribe()


async def propagation(dsn: str, changes: int = 100) -> list[float]:
    """Seconds from ``update`` returning on one instance to the other instance seeing it."""
    from buttress import connect

    async with (
        connect(dsn) as writer_backend,
        connect(dsn) as reader_backend,
        FeatureFlags(writer_backend, refresh_interval=None) as writer,
        FeatureFlags(reader_backend, refresh_interval=None) as reader,
    ):
        await writer.upsert(Flag("propagation", "Propagation", enabled=False))
        await until(reader, lambda: "propagation" in reader.snapshot)
        latencies = []
        for n in range(changes):
            want = n % 2 == 0
            started = time.perf_counter()
            await writer.update("propagation", enabled=want)
            await until(reader, lambda want=want: reader.is_enabled("propagation") is want)  # type: ignore[misc]  # default binds the loop value
            latencies.append(time.perf_counter() - started)
        await writer.delete("propagation")
        return latencies


def report_propagation() -> None:
    dsn = os.environ.get("BUTTRESS_BENCH_POSTGRES_DSN")
    if not dsn:
        print("\npropagation: set BUTTRESS_BENCH_POSTGRES_DSN to measure it on PostgreSQL")
        return
    latencies = sorted(asyncio.run(propagation(dsn)))
    p99 = latencies[min(len(latencies) - 1, round(len(latencies) * 0.99) - 1)]
    print(
        f"\npropagation on PostgreSQL ({len(latencies)} changes, LISTEN/NOTIFY): "
        f"median {statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
