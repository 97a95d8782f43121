"""Mutation testing of buttress's pure cores (issue #19): mutmut plus a supplement.

Run from the repository root, in the dev venv with mutmut installed
(``pip install -e '.[dev,mutation]'``)::

    python scripts/mutation.py                 # every core module
    python scripts/mutation.py log dsn         # only these
    python scripts/mutation.py --list          # the modules and their tests
    python scripts/mutation.py health --jobs 2 --show
    python scripts/mutation.py --json after.json            # keep every status
    python scripts/mutation.py --survivors-of after.json    # rerun only the survivors
    python scripts/mutation.py --named         # the hand mutations of issue #19

Each module runs in its own throw-away copy of the tree (``src``, ``tests``,
``docs`` and ``pyproject.toml`` with a ``[tool.mutmut]`` section appended), so
nothing in the work tree changes, with only that module's fast unit tests,
``CI`` unset and the real-server tests deselected (``-m "not postgres and not
redis"``). Hypothesis is derandomised with no example database (a root
``conftest.py`` in the copy loads that profile), so the survivor list is the
same from run to run.

Two engines, both counted:

* **mutmut** mutates every undecorated function and method of the module
  (operators, comparisons, constants, strings, arguments) and runs each mutant
  against the tests that cover it.
* **the supplement** (this file) covers what mutmut never touches: module-level
  constants (the redaction and DSN regexes, key-word sets, limits, tables) and
  decorated functions (``functools.lru_cache``, ``property``). Regex mutants
  drop an alternative, a class member or an anchor, negate a class and shift
  quantifiers; constant mutants drop a set or dict entry and move numbers by
  one; function mutants swap comparison, boolean and arithmetic operators and
  change constants. Every mutant is written into the copy and the module's
  tests run on it in a forked process (``-x``: the first failure kills it).

A surviving mutant that is listed in ``EQUIVALENT`` (with the reason it cannot
change behaviour) is reported as equivalent; any other survivor makes the exit
status 1. docs/testing.md ("Mutation testing") gives the scores and timings.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import functools
import hashlib
import importlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Plugins the core tests do not use are left out: faker alone costs a second per start.
PYTEST_ARGS = (
    "-p",
    "no:cacheprovider",
    *("-p", "no:faker", "-p", "no:pytest-bdd", "-p", "no:anyio", "-p", "no:platformdirs"),
    "-m",
    "not postgres and not redis",
)
PREWARM = (
    "pytest",
    "_pytest.assertion.rewrite",
    "pytest_asyncio.plugin",
    "_hypothesis_pytestplugin",
    "hypothesis",
    "attrs",
    "structlog",
)
CONFTEST = '''"""Written by scripts/mutation.py: deterministic hypothesis, stable survivors."""
from hypothesis import settings

settings.register_profile(
    "mutation", derandomize=True, database=None, deadline=None, print_blob=False
)
settings.load_profile("mutation")
'''


@dataclass(frozen=True)
class Target:
    """One core module: where it is, which tests guard it, what is in scope."""

    source: str
    tests: tuple[str, ...]
    functions: tuple[str, ...] = ("*",)
    """mutmut mutant-name globs (after the module prefix) in scope."""
    constants: tuple[str, ...] = ()
    """Module-level names the supplement mutates."""
    decorated: tuple[str, ...] = ()
    """Decorated functions (``name`` or ``Class.name``) whose bodies the supplement mutates."""

    @property
    def module(self) -> str:
        return self.source.removeprefix("src/").removesuffix(".py").replace("/", ".")

    @property
    def existing_tests(self) -> list[str]:
        return [test for test in self.tests if (ROOT / test).exists()]


TARGETS: dict[str, Target] = {
    "ratelimit": Target(
        "src/buttress/ratelimit/_core.py",
        (
            "tests/test_mutation_kills_ratelimit.py",
            "tests/test_ratelimit.py",
            "tests/test_ratelimit_properties.py",
            "tests/test_ratelimit_hostile_keys.py",
            "tests/test_documented_boundaries.py",
        ),
        constants=("MAX_KEY_LENGTH", "_US"),
    ),
    "breaker": Target(
        "src/buttress/breaker/_core.py",
        (
            "tests/test_mutation_kills_breaker.py",
            "tests/test_breaker.py",
            "tests/test_breaker_model.py",
            "tests/test_documented_boundaries.py",
        ),
        constants=("BUCKETS", "TRANSITIONS"),
    ),
    "flags": Target(
        "src/buttress/flags/_core.py",
        (
            "tests/test_mutation_kills_flags.py",
            "tests/test_flags_core.py",
            "tests/test_documented_boundaries.py",
        ),
        decorated=("bucket",),
    ),
    "health": Target(
        "src/buttress/health/status.py",
        ("tests/test_mutation_kills_health.py", "tests/test_health_status.py"),
        constants=("_SEVERITY", "_IETF"),
    ),
    "log": Target(
        "src/buttress/log.py",
        (
            "tests/test_mutation_kills_log.py",
            "tests/test_redaction_patterns.py",
            "tests/test_log.py",
        ),
        # The redaction half of log.py; configure_logging, get_logger and the
        # stdlib routing are plumbing, tested elsewhere.
        functions=(
            "xǁ_SecretRegistryǁ*",
            "x_register_secret__*",
            "x_clear_secrets__*",
            "x_redact_text__*",
            "x__redact_value__*",
            "x__sensitive__*",
            "x_redact__*",
        ),
        constants=(
            "MASK",
            "MIN_SECRET_LENGTH",
            "MAX_SECRETS",
            "_SENSITIVE_WORDS",
            "_SENSITIVE_PAIRS",
            "_DSN_PASSWORD",
            "_ASSIGNED_SECRET",
            "_AUTH_SCHEME",
            "_CAMEL_BOUNDARY",
            "_NON_ALNUM",
            "_INDEX_ABOVE",
        ),
        decorated=("_is_sensitive_key",),
    ),
    "dsn": Target(
        "src/buttress/backends/_dsn.py",
        (
            "tests/test_mutation_kills_dsn.py",
            "tests/test_dsn.py",
            "tests/test_topology_dsn.py",
            "tests/test_redaction_patterns.py",
        ),
        constants=(
            "MASK",
            "_KINDS",
            "_DEFAULT_PORTS",
            "_SCHEME",
            "_SECRET_QUERY_KEY",
            "_SECRET_QUERY",
        ),
        decorated=("DSN.secrets", "DSN.address"),
    ),
    "migrations": Target(
        "src/buttress/migrations/files.py",
        ("tests/test_mutation_kills_migrations.py", "tests/test_migrations.py"),
        functions=("x_normalise_text__*", "x_checksum__*"),
        constants=("CHECKSUM_ALGORITHM",),
    ),
}

_UTF8 = "'utf-8' to 'UTF-8': the same codec under another spelling"
_RL = "buttress.ratelimit._core."
_MIG = "buttress.migrations.files."
_BR = "buttress.breaker._core."
_DSN = "buttress.backends._dsn."
_LOG = "buttress.log."

EQUIVALENT: dict[str, str] = {
    # Survivors that cannot change behaviour; the reasons are repeated in
    # docs/testing.md. Keys are mutmut names or supplement ids.
    _RL + "x_gcra__mutmut_12": "`state > now` to `>=`: when state == now both pick the same value",
    _RL + "x_sliding_window__mutmut_42": (
        "`log[-1] <= now` to `<`: when log[-1] == now both pick the same stamp"
    ),
    _RL + "x_storage_key__mutmut_8": _UTF8,
    _RL + "x_storage_key__mutmut_9": (
        "`digest_key(key)` to `digest_key(None)` in the UnicodeEncodeError branch, which no key"
        " reaches: only lone surrogates fail to encode as UTF-8 and they are not printable,"
        " so `isprintable()` has already sent them to the digest"
    ),
    _MIG + "x_normalise_text__mutmut_22": (
        "`.rstrip('\\n')` to `.rstrip()`: every line was already right-stripped, so the"
        " only trailing whitespace left is line ends"
    ),
    _MIG + "x_checksum__mutmut_7": _UTF8,
    **dict.fromkeys(
        [_BR + f"xǁCountWindowǁ{m}" for m in ("__init____mutmut_5", "clear__mutmut_4")],
        "the ring's first slot 1 instead of 0: a ring evicts in the same order from any start",
    ),
    _BR + "xǁCountWindowǁadd__mutmut_21": (
        "the ring walked backwards (`slot - 1`): it still overwrites the slot written"
        " `size` outcomes ago, the oldest"
    ),
    _BR + "xǁTimeWindowǁ__init____mutmut_1": "`TimeWindow.duration` is never read",
    **dict.fromkeys(
        [
            _BR + f"xǁTimeWindowǁ{m}"
            for m in (
                *(f"__init____mutmut_{n}" for n in (6, 7, 8, 9, 12, 15)),
                *(f"clear__mutmut_{n}" for n in (3, 4, 5, 6, 9, 12)),
            )
        ],
        "an unused bucket's id (-1 << 62) or its zero counts changed: either guard alone"
        " keeps it out of the totals (an id too old is skipped, zero counts add nothing),"
        " and its first outcome resets both",
    ),
    _DSN + "x_scrub__mutmut_7": (
        "`quote(secret, safe='')` to `safe='XXXX'`: letters are never quoted anyway"
    ),
    _DSN + "x__parse_sqlite__mutmut_20": (
        "`rest[1:] if rest` made unconditional: an empty rest gives the empty path,"
        " which the next line maps to ':memory:' as well"
    ),
    **dict.fromkeys(
        [_DSN + f"x__parse_sqlite__mutmut_{n}" for n in (27, 28)],
        "':memory:' dropped from the paths mapped to ':memory:': it maps to itself",
    ),
    _DSN + "x__hosts__mutmut_22": (
        "`partition(':')` to `rpartition`: the branch runs only when the part has one ':'"
    ),
    **dict.fromkeys(
        [_DSN + f"x__hosts__mutmut_{n}" for n in (38, 40)],
        "the missing port parameter's default '' to None: both are falsy, so the"
        " scheme's default port is used either way",
    ),
    "_SCHEME: drop ^ at 0": "the pattern is only used with `re.match`, which anchors it",
    "_SECRET_QUERY: drop '&' from [^=&#]": (
        "a match that crosses an '&' before the secret word exists as well from that"
        " '&', and the replacement keeps the name part as written"
    ),
    **dict.fromkeys(
        [
            _LOG + f"xǁ_SecretRegistryǁ{m}"
            for m in (
                "__init____mutmut_4",
                "__init____mutmut_5",
                "clear__mutmut_2",
                "clear__mutmut_3",
                "_current__mutmut_22",
                "_current__mutmut_23",
            )
        ],
        "the registry's dirty flag False to None (as falsy) or True (one needless"
        " rebuild of the same snapshot)",
    ),
    _LOG + "xǁ_SecretRegistryǁadd__mutmut_3": "the registry's dict values are never read",
    _LOG + "xǁ_SecretRegistryǁadd__mutmut_5": "`popitem(last=False)` to `last=None`: as falsy",
    **dict.fromkeys(
        [_LOG + f"xǁ_SecretRegistryǁ_current__mutmut_{n}" for n in (12, 19)],
        "the prefix index built one value sooner, or never: it only narrows the"
        " candidates, the masking is the same",
    ),
    _LOG + "xǁ_SecretRegistryǁscrub__mutmut_2": (
        "`or` to `and` in the early return: with no values nothing is masked anyway,"
        " and a text shorter than MIN_SECRET_LENGTH cannot contain a value"
    ),
    _LOG + "xǁ_SecretRegistryǁscrub__mutmut_10": (
        "three more (shorter) prefixes looked up: every index key is MIN_SECRET_LENGTH long"
    ),
    _LOG + "x__redact_value__mutmut_18": _UTF8,
    **dict.fromkeys(
        ["_INDEX_ABOVE: 64 -> 65", "_INDEX_ABOVE: 64 -> 63"],
        "the registry size above which the prefix index is built: speed only",
    ),
    "_ASSIGNED_SECRET: drop the alternative 'access_token'": (
        "`token` still matches inside `access_token` (the look-behind only refuses a"
        " letter or digit before it, and `_` is neither)"
    ),
    **dict.fromkeys(
        [f"_AUTH_SCHEME: drop {r!r} from [A-Za-z0-9._~+/=\\-]" for r in ("A-Z", "a-z")],
        "one letter range dropped from the token class: the pattern is case-insensitive",
    ),
    **dict.fromkeys(
        [f"_DSN_PASSWORD: drop {member!r} from [a-z0-9+.\\-]" for member in ("+", ".", "\\-")],
        "a scheme separator dropped from the class: the match then starts after the"
        " separator, at a word boundary, and masks the same password",
    ),
    _BR + "x_open_wait__mutmut_5": (
        "`wait < recovery_timeout` to `<=`: when equal both return the same value"
    ),
    **dict.fromkeys(
        [
            _BR + f"xǁBreakerMachineǁ{m}"
            for m in ("__init____mutmut_25", "admit__mutmut_33", "admit__mutmut_34")
        ],
        "probe numbers start at 1 or step by -1 or 2: they are only dictionary keys and"
        " stay distinct",
    ),
    **dict.fromkeys(
        [_BR + f"xǁBreakerMachineǁ_move__mutmut_{n}" for n in (16, 17)],
        "the epoch steps by -1 or 2: epochs are only compared for equality and stay distinct",
    ),
    _BR + "xǁBreakerMachineǁadmit__mutmut_27": (
        "the transition dropped from a half-open refusal: a transition is only made by"
        " entering half-open, which empties the probes, and half_open_max_calls >= 1, so"
        " that call is never refused"
    ),
    _BR + "xǁBreakerMachineǁretry_after__mutmut_13": (
        "`state is HALF_OPEN and probes` to `or`: probes exist only while half-open, and"
        " a half-open refusal happens only with probes in flight"
    ),
    _BR + "xǁBreakerMachineǁretry_after__mutmut_27": (
        "the closed state's retry_after 0.0 to 1.0: only refusals ask, and a closed"
        " circuit refuses nothing"
    ),
    _BR + "xǁBreakerMachineǁ_should_trip__mutmut_7": (
        "`rate is None or window is None` to `and`: the configuration has a window"
        " exactly when it has a rate (BreakerConfig refuses a window without a rate)"
    ),
}


@dataclass(frozen=True)
class Named:
    """A hand mutation issue #19 found surviving, and the fixed test that now kills it."""

    label: str
    source: str
    old: str
    new: str
    tests: tuple[str, ...]


_BOUNDS = "tests/test_documented_boundaries.py::"
_ROWS = "tests/test_redaction_patterns.py::"
_WORD = _ROWS + "test_a_sensitive_key_is_masked_whole[sensitive word:{}]"
_FREE = _ROWS + "test_a_sensitive_key_in_free_text_masks_its_value[{}]"
_JOINED = "test_a_secret_in_a_string_is_masked[joined key:{}]"
_QUERY = _ROWS + "test_redact_dsn_masks_a_secret_query_parameter[DSN query:pwd]"
_LOG = "src/buttress/log.py"

# ``python scripts/mutation.py --named`` applies each one to a copy and runs the
# named tests: every one must fail. docs/testing.md has the same table.
NAMED: tuple[Named, ...] = (
    Named(
        "rollout: `user_bucket < threshold` to `<=`",
        "src/buttress/flags/_core.py",
        "user_bucket < flag.threshold",
        "user_bucket <= flag.threshold",
        (_BOUNDS + "test_a_user_whose_bucket_equals_the_threshold_is_off",),
    ),
    Named(
        "auth scheme: drop `basic`",
        _LOG,
        "(?:bearer|basic)",
        "(?:bearer)",
        (_ROWS + "test_a_secret_in_a_string_is_masked[auth scheme:Basic]",),
    ),
    # The key=value rule reads the same words as sensitive keys (and the words run
    # together at a key's end): the mutations the issue names, in today's spelling.
    Named(
        "key=value: drop `pwd`",
        _LOG,
        '        "pwd",\n',
        "",
        (_FREE.format("sensitive word:pwd"), _ROWS + _JOINED.format("MYSQL_PWD")),
    ),
    Named(
        "key=value: drop `password` (behind `sslpassword`)",
        _LOG,
        '        "password",\n',
        "",
        (_ROWS + _JOINED.format("PGPASSWORD"),),
    ),
    Named(
        "sensitive pairs: drop `api key` (behind `X-Api-Key`)",
        _LOG,
        '{("api", "key"), ("private", "key")}',
        '{("private", "key")}',
        (_ROWS + "test_a_sensitive_key_is_masked_whole[sensitive pair:api key]",),
    ),
    *(
        Named(
            f"sensitive words: drop `{word}`",
            _LOG,
            f'        "{word}",\n',
            "",
            (_WORD.format(word),),
        )
        for word in ("passphrase", "privatekey", "credential")
    ),
    Named(
        "DSN.secrets (scrubbed from errors): drop `pwd`",
        "src/buttress/backends/_dsn.py",
        'r"pass|pwd|secret|token"',
        'r"pass|secret|token"',
        (_QUERY,),
    ),
    Named(
        "redact_dsn query: drop `pwd` (the rewrite)",
        "src/buttress/backends/_dsn.py",
        "(?:pass|pwd|secret|token)",
        "(?:pass|secret|token)",
        (_QUERY,),
    ),
    Named(
        "hit_all: the refusal with the longest wait, `max` to `min`",
        "src/buttress/ratelimit/_core.py",
        "return max(refused, key=lambda d: d.retry_after)",
        "return min(refused, key=lambda d: d.retry_after)",
        (
            _BOUNDS + "test_hit_all_returns_the_refusal_with_the_longest_wait",
            "tests/test_mutation_kills_ratelimit.py::"
            "test_binding_picks_the_longest_wait_not_the_largest_limit",
        ),
    ),
    Named(
        "breaker: failure rate `>=` to `>`",
        "src/buttress/breaker/_core.py",
        "failures / calls >= rate",
        "failures / calls > rate",
        (_BOUNDS + "test_a_failure_rate_exactly_at_the_threshold_opens",),
    ),
    Named(
        "Retry-After: floor of 1 to 0",
        "src/buttress/ratelimit/_values.py",
        "return max(1, _whole_seconds(self.retry_after))",
        "return max(0, _whole_seconds(self.retry_after))",
        (_BOUNDS + "test_retry_after_is_whole_seconds_and_at_least_one",),
    ),
    Named(
        "retry: a wait equal to `max_delay` refused (`>` to `>=`)",
        "src/buttress/policies/_retry.py",
        "retry_after > self.max_delay",
        "retry_after >= self.max_delay",
        (_BOUNDS + "test_a_retry_after_equal_to_max_delay_is_waited",),
    ),
    Named(
        "retry: backoff not capped at `max_delay`",
        "src/buttress/policies/_retry.py",
        "return min(max_delay, base_delay * multiplier ** (attempt - 1))",
        "return base_delay * multiplier ** (attempt - 1)",
        (_BOUNDS + "test_backoff_reaches_max_delay_and_stays_there",),
    ),
)


KILLED_STATUSES = frozenset({"killed", "timeout", "caught by type check", "segfault"})


# -- results ----------------------------------------------------------------------------------


@dataclass
class Mutant:
    name: str
    status: str
    detail: str = ""

    @property
    def killed(self) -> bool:
        return self.status in KILLED_STATUSES


@dataclass
class ModuleResult:
    key: str
    mutmut: list[Mutant] = field(default_factory=list)
    supplement: list[Mutant] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def survivors(self) -> list[Mutant]:
        return [m for m in self.mutmut + self.supplement if not m.killed]


def score(mutants: Sequence[Mutant]) -> str:
    killed = sum(m.killed for m in mutants)
    return f"{killed}/{len(mutants)}"


# -- the work copy ----------------------------------------------------------------------------


def make_workspace(target: Target) -> Path:
    workspace = Path(tempfile.mkdtemp(prefix="buttress-mutation-"))
    ignore = shutil.ignore_patterns("__pycache__", ".hypothesis", "*.pyc")
    for folder in ("src", "tests", "docs"):
        shutil.copytree(ROOT / folder, workspace / folder, ignore=ignore)
    for name in ("README.md", "mkdocs.yml"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, workspace / name)
    config = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    config += (
        "\n[tool.mutmut]\n"
        'source_paths = ["src/"]\n'
        f"only_mutate = [{json.dumps(target.source)}]\n"
        f"pytest_add_cli_args_test_selection = {json.dumps(target.existing_tests)}\n"
        f"pytest_add_cli_args = {json.dumps(list(PYTEST_ARGS))}\n"
        "use_git_change_detection = false\n"
        # mutmut runs the tests from its mutants/ copy: what they read goes there too.
        'also_copy = ["docs/", "conftest.py", "README.md", "mkdocs.yml"]\n'
    )
    (workspace / "pyproject.toml").write_text(config, encoding="utf-8")
    (workspace / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    return workspace


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


# -- mutmut -----------------------------------------------------------------------------------


def mutmut_command() -> list[str]:
    found = shutil.which("mutmut", path=str(Path(sys.executable).parent))
    if found is None:
        sys.exit("mutmut is not installed in this environment: pip install -e '.[mutation]'")
    return [found]


def run_mutmut(
    target: Target, workspace: Path, jobs: int, log: Path, earlier: dict[str, str] | None
) -> list[Mutant]:
    """mutmut on ``target``; with ``earlier`` statuses (of the same source), only
    the mutants that survived then run again and the killed ones are carried over."""
    prefix = target.module + "."
    globs = [prefix + g for g in target.functions]
    command = [*mutmut_command(), "run", "--max-children", str(jobs)]
    if earlier is not None:
        again = [name for name, status in earlier.items() if status not in KILLED_STATUSES]
        if not again:
            return [Mutant(name, status) for name, status in earlier.items()]
        command += again
    elif target.functions != ("*",):
        command += globs
    with log.open("w", encoding="utf-8") as out:
        subprocess.run(
            command,
            cwd=workspace,
            env=child_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    listing = subprocess.run(
        [*mutmut_command(), "results", "--all", "true"],
        cwd=workspace,
        env=child_env(),
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    mutants = []
    for line in listing.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if not sep or not name.startswith(prefix):
            continue
        if not any(fnmatch.fnmatchcase(name, g) for g in globs):
            continue
        if earlier is not None and earlier.get(name, "survived") in KILLED_STATUSES:
            status = earlier[name]
        mutants.append(Mutant(name, status))
    if not mutants:
        sys.exit(f"mutmut produced no results for {target.source}; see {log}")
    if earlier is not None and {m.name for m in mutants} != set(earlier):
        sys.exit(f"{target.source}: the mutants differ from the earlier run's; run it in full")
    for mutant in mutants:
        if not mutant.killed:
            mutant.detail = subprocess.run(
                [*mutmut_command(), "show", mutant.name],
                cwd=workspace,
                env=child_env(),
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip()
    return mutants


# -- the supplement: regex mutants ------------------------------------------------------------

_QUANT = re.compile(r"\{(\d*)(,?)(\d*)\}\??|[*+?]\??")
_INLINE_FLAGS = re.compile(r"\(\?[aiLmsux]+\)")


@dataclass
class Token:
    kind: str  # escape, class, open, look, flags, close, alt, quant, anchor, literal
    text: str


def tokenize_regex(pattern: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            tokens.append(Token("escape", pattern[i : i + 2]))
            i += 2
        elif c == "[":
            j = i + 1
            if j < len(pattern) and pattern[j] == "^":
                j += 1
            if j < len(pattern) and pattern[j] == "]":
                j += 1
            while pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            tokens.append(Token("class", pattern[i : j + 1]))
            i = j + 1
        elif c == "(":
            flags = _INLINE_FLAGS.match(pattern, i)
            if flags:
                tokens.append(Token("flags", flags.group()))
                i = flags.end()
                continue
            for opener, kind in (("(?<=", "look"), ("(?<!", "look"), ("(?=", "look")):
                if pattern.startswith(opener, i):
                    tokens.append(Token(kind, opener))
                    i += len(opener)
                    break
            else:
                if pattern.startswith("(?!", i):
                    tokens.append(Token("look", "(?!"))
                    i += 3
                elif pattern.startswith("(?:", i):
                    tokens.append(Token("open", "(?:"))
                    i += 3
                elif pattern.startswith("(?P<", i):
                    end = pattern.index(">", i) + 1
                    tokens.append(Token("open", pattern[i:end]))
                    i = end
                else:
                    tokens.append(Token("open", "("))
                    i += 1
        elif c == ")":
            tokens.append(Token("close", c))
            i += 1
        elif c == "|":
            tokens.append(Token("alt", c))
            i += 1
        elif c in "^$":
            tokens.append(Token("anchor", c))
            i += 1
        elif (quant := _QUANT.match(pattern, i)) and tokens:
            tokens.append(Token("quant", quant.group()))
            i = quant.end()
        else:
            tokens.append(Token("literal", c))
            i += 1
    return tokens


def _class_members(body: str) -> list[tuple[int, int]]:
    """Spans of the members of a class body (``a-z``, ``\\s``, ``@``)."""
    spans = []
    i = 0
    while i < len(body):
        start = i
        i += 2 if body[i] == "\\" else 1
        if i + 1 < len(body) and body[i] == "-" and body[start] != "\\":
            i += 3 if body[i + 1] == "\\" else 2
        spans.append((start, i))
    return spans


def _quant_variants(text: str) -> Iterator[tuple[str, str]]:
    lazy = "?" if len(text) > 1 and text.endswith("?") and text != "?" else ""
    core = text[: len(text) - len(lazy)]
    swaps = {"*": ["+"], "+": ["*"], "?": [""]}
    if core in swaps:
        for new in swaps[core]:
            yield f"{core!r} -> {new!r}", new + lazy
        return
    brace = re.fullmatch(r"\{(\d*)(,?)(\d*)\}", core)
    if brace is None:
        return
    low_text, comma, high_text = brace.groups()
    low = int(low_text or 0)
    options: list[str] = []
    if comma and not high_text:
        options = [f"{{{low + 1},}}"] + ([f"{{{low - 1},}}"] if low else [])
    elif comma:
        high = int(high_text)
        options = [f"{{{low},{high + 1}}}", f"{{{low},{high - 1}}}"]
        options += [f"{{{low + 1},{high}}}"] + ([f"{{{low - 1},{high}}}"] if low else [])
    else:
        options = [f"{{{low + 1}}}"] + ([f"{{{low - 1}}}"] if low else [])
    for new in options:
        yield f"{core} -> {new}", new + lazy


def regex_mutants(pattern: str, flags: int) -> list[tuple[str, str]]:
    """``(description, mutated pattern)`` for every valid, distinct regex mutant."""
    tokens = tokenize_regex(pattern)
    assert "".join(t.text for t in tokens) == pattern, pattern
    found: list[tuple[str, list[Token]]] = []

    def replaced(index: int, text: str) -> list[Token]:
        return [*tokens[:index], Token("x", text), *tokens[index + 1 :]]

    # groups: (open index or -1, alternation indexes, close index or len)
    stack: list[tuple[int, list[int]]] = [(-1, [])]
    groups: list[tuple[int, list[int], int]] = []
    for index, token in enumerate(tokens):
        if token.kind in ("open", "look"):
            stack.append((index, []))
        elif token.kind == "alt":
            stack[-1][1].append(index)
        elif token.kind == "close":
            opened, alts = stack.pop()
            groups.append((opened, alts, index))
            if tokens[opened].kind == "look":
                found.append(
                    (
                        f"drop the assertion {''.join(t.text for t in tokens[opened : index + 1])}",
                        tokens[:opened] + tokens[index + 1 :],
                    )
                )
    groups.append((-1, stack[0][1], len(tokens)))
    for opened, alts, closed in groups:
        bounds = [opened, *alts, closed]
        for k in range(len(bounds) - 1):
            if not alts:
                break
            start, end = bounds[k] + 1, bounds[k + 1]
            branch = "".join(t.text for t in tokens[start:end])
            if k == 0:
                kept = tokens[:start] + tokens[end + 1 :]
            else:
                kept = tokens[: start - 1] + tokens[end:]
            found.append((f"drop the alternative {branch!r}", kept))

    for index, token in enumerate(tokens):
        if token.kind == "flags":
            found.append((f"drop {token.text}", replaced(index, "")))
        elif token.kind == "anchor" or (
            token.kind == "escape" and token.text in (r"\b", r"\A", r"\Z")
        ):
            found.append((f"drop {token.text} at {index}", replaced(index, "")))
        elif token.kind == "quant":
            for description, new in _quant_variants(token.text):
                found.append((f"{description} at {index}", replaced(index, new)))
        elif token.kind == "class":
            negated = token.text.startswith("[^")
            body = token.text[2:-1] if negated else token.text[1:-1]
            flipped = "[" + body + "]" if negated else "[^" + body + "]"
            found.append((f"{token.text} -> {flipped}", replaced(index, flipped)))
            head = "[^" if negated else "["
            for start, end in _class_members(body):
                rest = body[:start] + body[end:]
                found.append(
                    (
                        f"drop {body[start:end]!r} from {token.text}",
                        replaced(index, head + rest + "]"),
                    )
                )

    results: list[tuple[str, str]] = []
    seen = {pattern}
    for description, new_tokens in found:
        new = "".join(t.text for t in new_tokens)
        if new in seen:
            continue
        seen.add(new)
        try:
            re.compile(new, flags)
        except re.error:
            continue
        results.append((description, new))
    return results


# -- the supplement: AST mutants --------------------------------------------------------------

_COMPARE_SWAPS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_BINOP_SWAPS: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Mod: ast.Div,
    ast.Pow: ast.Mult,
    ast.LShift: ast.RShift,
    ast.RShift: ast.LShift,
    ast.BitAnd: ast.BitOr,
    ast.BitOr: ast.BitAnd,
    ast.BitXor: ast.BitAnd,
}
_NAME_SWAPS = {"any": "all", "all": "any", "min": "max", "max": "min"}
_METHOD_SWAPS = {
    "lower": "upper",
    "upper": "lower",
    "lstrip": "rstrip",
    "rstrip": "lstrip",
    "find": "rfind",
    "rfind": "find",
    "startswith": "endswith",
    "endswith": "startswith",
    "removeprefix": "removesuffix",
    "removesuffix": "removeprefix",
    "partition": "rpartition",
    "rpartition": "partition",
}

Edit = Callable[[ast.AST], None]


def _set_attr(name: str, value: object) -> Edit:
    def edit(node: ast.AST) -> None:
        setattr(node, name, value)

    return edit


def _constant_edits(node: ast.Constant) -> Iterator[tuple[str, Edit]]:
    value = node.value
    if isinstance(value, bool):
        yield f"{value} -> {not value}", _set_attr("value", not value)
    elif isinstance(value, int):
        yield f"{value} -> {value + 1}", _set_attr("value", value + 1)
        yield f"{value} -> {value - 1}", _set_attr("value", value - 1)
    elif isinstance(value, float):
        yield f"{value!r} -> {value + 1!r}", _set_attr("value", value + 1)
    elif isinstance(value, str):
        yield f"{value!r} -> {'XX' + value + 'XX'!r}", _set_attr("value", "XX" + value + "XX")


def node_edits(node: ast.AST) -> Iterator[tuple[str, Edit]]:
    """Operator mutations of one node (not of its children)."""
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            swap = _COMPARE_SWAPS.get(type(op))
            if swap is not None:
                ops = [*node.ops[:i], swap(), *node.ops[i + 1 :]]
                yield f"{type(op).__name__} -> {swap.__name__}", _set_attr("ops", ops)
    elif isinstance(node, ast.BoolOp):
        new_op: ast.boolop = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        yield f"{type(node.op).__name__} -> {type(new_op).__name__}", _set_attr("op", new_op)
    elif isinstance(node, ast.BinOp):
        binswap = _BINOP_SWAPS.get(type(node.op))
        if binswap is not None:
            yield f"{type(node.op).__name__} -> {binswap.__name__}", _set_attr("op", binswap())
    elif isinstance(node, ast.Constant):
        yield from _constant_edits(node)
    elif isinstance(node, ast.Call):
        if isinstance(node.func, ast.Name) and node.func.id in _NAME_SWAPS:
            new_name = _NAME_SWAPS[node.func.id]
            yield (
                f"{node.func.id}() -> {new_name}()",
                _set_attr("func", ast.Name(new_name, ast.Load())),
            )
        elif isinstance(node.func, ast.Attribute) and node.func.attr in _METHOD_SWAPS:
            new_attr = _METHOD_SWAPS[node.func.attr]
            func = ast.Attribute(node.func.value, new_attr, ast.Load())
            yield f".{node.func.attr}() -> .{new_attr}()", _set_attr("func", func)


def _unary_not_edits(parent: ast.AST) -> Iterator[tuple[str, Edit]]:
    """``not x`` -> ``x``: replace the UnaryOp child in its parent's field."""
    for name, value in ast.iter_fields(parent):
        if isinstance(value, ast.UnaryOp) and isinstance(value.op, ast.Not):
            yield "drop `not`", _set_attr(name, value.operand)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, ast.UnaryOp) and isinstance(item.op, ast.Not):
                    items = [*value[:i], item.operand, *value[i + 1 :]]
                    yield "drop `not`", _set_attr(name, items)


def _is_docstring(node: ast.AST, parent: ast.AST) -> bool:
    return (
        isinstance(parent, ast.Expr)
        and isinstance(node, ast.Constant)
        and isinstance(node.value, str)
    )


def body_edits(function: ast.FunctionDef) -> Iterator[tuple[ast.AST, str, Edit]]:
    """Every operator mutation inside ``function``'s body (decorators untouched)."""
    for statement in function.body:
        for parent in ast.walk(statement):
            for _, child in ast.iter_fields(parent):
                children = child if isinstance(child, list) else [child]
                for node in children:
                    if isinstance(node, ast.AST) and not _is_docstring(node, parent):
                        for description, edit in node_edits(node):
                            yield node, description, edit
            for description, edit in _unary_not_edits(parent):
                yield parent, description, edit


def _is_re_compile(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "compile"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "re"
    )


def _flags_value(args: Sequence[ast.expr]) -> int:
    flags = 0
    for arg in args:
        if isinstance(arg, ast.Attribute) and isinstance(arg.value, ast.Name):
            flags |= int(getattr(re, arg.attr))
    return flags


def constant_edits(value: ast.expr) -> Iterator[tuple[ast.AST, str, Edit]]:
    """Mutations of a module-level constant's value."""
    if _is_re_compile(value):
        assert isinstance(value, ast.Call)
        pattern = value.args[0]
        assert isinstance(pattern, ast.Constant)
        assert isinstance(pattern.value, str)
        flags = _flags_value(value.args[1:])
        for description, new in regex_mutants(pattern.value, flags):
            yield pattern, description, _set_attr("value", new)
        for i, arg in enumerate(value.args[1:], start=1):
            rest = [*value.args[:i], *value.args[i + 1 :]]
            yield value, f"drop the flag {ast.unparse(arg)}", _set_attr("args", rest)
        return
    if isinstance(value, ast.Constant):
        for description, edit in _constant_edits(value):
            yield value, description, edit
        return
    if isinstance(value, ast.Call) and value.args:  # frozenset({...})
        yield from constant_edits(value.args[0])
        return
    if isinstance(value, ast.Set | ast.List | ast.Tuple):
        for i, element in enumerate(value.elts):
            rest = [*value.elts[:i], *value.elts[i + 1 :]]
            yield value, f"drop the element {ast.unparse(element)}", _set_attr("elts", rest)
        return
    if isinstance(value, ast.Dict):
        for i, key in enumerate(value.keys):
            keys = [*value.keys[:i], *value.keys[i + 1 :]]
            values = [*value.values[:i], *value.values[i + 1 :]]
            shown = ast.unparse(key) if key is not None else "**" + ast.unparse(value.values[i])

            def edit(
                node: ast.AST, keys: list[ast.expr | None] = keys, values: list[ast.expr] = values
            ) -> None:
                assert isinstance(node, ast.Dict)
                node.keys, node.values = keys, values

            yield value, f"drop the entry {shown}", edit
            item = value.values[i]
            if key is not None and isinstance(item, ast.Constant):
                for description, constant_edit in _constant_edits(item):
                    yield item, f"{ast.unparse(key)}: {description}", constant_edit


@dataclass(frozen=True)
class SourceMutant:
    id: str
    source: str


def _find_function(tree: ast.Module, dotted: str) -> ast.FunctionDef:
    scope: list[ast.stmt] = tree.body
    *classes, name = dotted.split(".")
    for class_name in classes:
        found = next(n for n in scope if isinstance(n, ast.ClassDef) and n.name == class_name)
        scope = found.body
    return next(n for n in scope if isinstance(n, ast.FunctionDef) and n.name == name)


def _assigned_value(tree: ast.Module, name: str) -> ast.expr:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return node.value
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == name
            and node.value is not None
        ):
            return node.value
    raise LookupError(f"no module-level assignment to {name}")


def supplement_mutants(target: Target, text: str) -> list[SourceMutant]:
    """Every supplement mutant of ``text``, as whole-module source (``ast.unparse``)."""
    mutants: list[SourceMutant] = []
    seen: set[str] = set()
    ids: dict[str, int] = {}

    def collect(
        owner: str,
        locate: Callable[[ast.Module], ast.AST],
        edits: Callable[[ast.AST], Iterator[tuple[ast.AST, str, Edit]]],
    ) -> None:
        template = ast.parse(text)
        for index, (node, description, _) in enumerate(edits(locate(template))):
            tree = ast.parse(text)
            twin_node, _, edit = list(edits(locate(tree)))[index]
            edit(twin_node)
            source = ast.unparse(tree)
            if source in seen:
                continue
            seen.add(source)
            where = "" if edits is _as_constant_edits else f" `{_short(node)}`"
            name = f"{owner}:{where} {description}"
            ids[name] = ids.get(name, 0) + 1
            if ids[name] > 1:
                name += f" #{ids[name]}"
            mutants.append(SourceMutant(name, source))

    for name in target.constants:
        collect(name, functools.partial(_assigned_value, name=name), _as_constant_edits)
    for dotted in target.decorated:
        collect(dotted, functools.partial(_find_function, dotted=dotted), _as_body_edits)
    return mutants


def _short(node: ast.AST) -> str:
    text = " ".join(ast.unparse(node).split())
    return text if len(text) <= 60 else text[:57] + "..."


def _as_constant_edits(node: ast.AST) -> Iterator[tuple[ast.AST, str, Edit]]:
    assert isinstance(node, ast.expr)
    return constant_edits(node)


def _as_body_edits(node: ast.AST) -> Iterator[tuple[ast.AST, str, Edit]]:
    assert isinstance(node, ast.FunctionDef)
    return body_edits(node)


# -- the supplement: running ------------------------------------------------------------------


def prewarm() -> None:
    """Import the test tooling once in this process, so each forked child only
    imports buttress and the test modules (never buttress here: the children must
    load the mutated copy)."""
    for name in PREWARM:
        importlib.import_module(name)
    assert not any(name.startswith("buttress") for name in sys.modules)


def start_child(workspace: Path, src: Path, tests: Sequence[str]) -> int:
    """Fork a child that runs ``tests`` (``-x``) importing buttress from ``src``."""
    pid = os.fork()
    if pid:
        return pid
    code = 98
    try:
        os.chdir(workspace)
        sys.path.insert(0, str(src))
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        import pytest

        code = int(pytest.main(["-x", "-q", "--tb=no", *PYTEST_ARGS, *tests]))
    finally:
        os._exit(code)


def status_of(wait_status: int) -> str:
    code = os.waitstatus_to_exitcode(wait_status)
    return {0: "survived", 5: "no tests"}.get(code, "killed")


def run_forked(
    workspace: Path,
    slots: Sequence[Path],
    jobs: Sequence[tuple[str, str]],
    tests: Sequence[str],
    timeout: float,
    relative: str,
    on_done: Callable[[str, str], None],
) -> None:
    """Run each ``(id, source)`` job on its own slot (a copy of ``src``)."""
    free = list(slots)
    pending = list(jobs)
    running: dict[int, tuple[Path, str, float]] = {}
    while pending or running:
        while pending and free:
            job_id, source = pending.pop(0)
            slot = free.pop()
            (slot / relative).write_text(source, encoding="utf-8")
            pid = start_child(workspace, slot, tests)
            running[pid] = (slot, job_id, time.monotonic() + timeout)
        pid, wait_status = os.waitpid(-1, os.WNOHANG)
        if pid:
            slot, job_id, _ = running.pop(pid)
            free.append(slot)
            on_done(job_id, status_of(wait_status))
            continue
        for pid, (slot, job_id, deadline) in list(running.items()):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                del running[pid]
                free.append(slot)
                on_done(job_id, "timeout")
        time.sleep(0.02)


def run_supplement(
    target: Target, workspace: Path, jobs: int, earlier: dict[str, str] | None
) -> list[Mutant]:
    if not target.constants and not target.decorated:
        return []
    prewarm()
    relative = target.source.removeprefix("src/")
    original = (workspace / target.source).read_text(encoding="utf-8")
    every = supplement_mutants(target, original)
    if earlier is not None and {m.id for m in every} != set(earlier):
        sys.exit(f"{target.source}: the mutants differ from the earlier run's; run it in full")
    carried = {k: v for k, v in (earlier or {}).items() if v in KILLED_STATUSES}
    mutants = [m for m in every if m.id not in carried]
    slots = [workspace / "src"]
    for k in range(1, jobs):
        shutil.copytree(workspace / "src", workspace / f"src-{k}")
        slots.append(workspace / f"src-{k}")
    tests = target.existing_tests
    # A clean run on the unparsed (comment-free) source first: it must pass, and
    # its duration sets the timeout.
    if not mutants:
        return [Mutant(m.id, carried[m.id]) for m in every]
    started = time.monotonic()
    clean: list[str] = []
    unparsed = ast.unparse(ast.parse(original))
    run_forked(
        workspace,
        slots[:1],
        [("clean", unparsed)],
        tests,
        1800,
        relative,
        lambda _, status: clean.append(status),
    )
    if clean != ["survived"]:
        sys.exit(f"the unmutated {target.source} fails its tests in the copy ({clean})")
    timeout = 10 * (time.monotonic() - started) + 30
    statuses: dict[str, str] = {}

    def done(job_id: str, status: str) -> None:
        statuses[job_id] = status
        print(f"      {status:8} {job_id}", flush=True)

    try:
        run_forked(
            workspace, slots, [(m.id, m.source) for m in mutants], tests, timeout, relative, done
        )
    finally:
        for slot in slots:
            (slot / relative).write_text(original, encoding="utf-8")
    statuses.update(carried)
    return [Mutant(m.id, statuses[m.id]) for m in every]


# -- main -------------------------------------------------------------------------------------


def source_digest(target: Target) -> str:
    return hashlib.sha256((ROOT / target.source).read_bytes()).hexdigest()


def run_module(
    key: str, jobs: int, engines: set[str], keep: bool, earlier: dict[str, Any] | None
) -> ModuleResult:
    target = TARGETS[key]
    result = ModuleResult(key)
    if earlier is not None and earlier.get("source_sha256") != source_digest(target):
        print(f"== {key}: {target.source} changed since the earlier run: running every mutant")
        earlier = None
    workspace = make_workspace(target)
    print(f"== {key}: {target.source} (copy in {workspace})", flush=True)
    try:
        if "mutmut" in engines:
            started = time.monotonic()
            result.mutmut = run_mutmut(
                target,
                workspace,
                jobs,
                workspace / "mutmut.log",
                None if earlier is None else earlier.get("mutmut"),
            )
            result.seconds["mutmut"] = time.monotonic() - started
            print(f"   mutmut: {score(result.mutmut)} killed in {result.seconds['mutmut']:.0f} s")
        if "supplement" in engines:
            started = time.monotonic()
            result.supplement = run_supplement(
                target, workspace, jobs, None if earlier is None else earlier.get("supplement")
            )
            result.seconds["supplement"] = time.monotonic() - started
            print(
                f"   supplement: {score(result.supplement)} killed"
                f" in {result.seconds['supplement']:.0f} s"
            )
    finally:
        if not keep:
            shutil.rmtree(workspace, ignore_errors=True)
    return result


def report(results: Sequence[ModuleResult], show: bool) -> int:
    unexpected = 0
    print()
    print("| module | mutmut | supplement | equivalent survivors | unexpected survivors | time |")
    print("|---|---|---|---|---|---|")
    for result in results:
        survivors = result.survivors()
        equivalent = [m for m in survivors if m.name in EQUIVALENT]
        other = [m for m in survivors if m.name not in EQUIVALENT]
        unexpected += len(other)
        total = sum(result.seconds.values())
        print(
            f"| {result.key} | {score(result.mutmut)} | {score(result.supplement)} "
            f"| {len(equivalent)} | {len(other)} | {total:.0f} s |"
        )
    for result in results:
        for mutant in result.survivors():
            mark = "equivalent" if mutant.name in EQUIVALENT else "SURVIVED"
            print(f"\n[{result.key}] {mark} ({mutant.status}): {mutant.name}")
            if mutant.name in EQUIVALENT:
                print(f"    why: {EQUIVALENT[mutant.name]}")
            if show or mutant.name not in EQUIVALENT:
                for line in mutant.detail.splitlines():
                    print(f"    {line}")
    return 1 if unexpected else 0


def write_json(path: Path, results: Sequence[ModuleResult]) -> None:
    path.write_text(
        json.dumps(
            {
                r.key: {
                    "source_sha256": source_digest(TARGETS[r.key]),
                    "seconds": r.seconds,
                    "mutmut": {m.name: m.status for m in r.mutmut},
                    "supplement": {m.name: m.status for m in r.supplement},
                }
                for r in results
            },
            indent=2,
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )


def run_named() -> int:
    """Apply every ``NAMED`` mutation to a copy; each must fail its named tests."""
    prewarm()
    workspace = make_workspace(TARGETS["log"])
    failures = 0
    try:
        for mutation in NAMED:
            path = workspace / mutation.source
            original = path.read_text(encoding="utf-8")
            if original.count(mutation.old) != 1 or mutation.old == mutation.new:
                print(f"NOT FOUND  {mutation.label}: {mutation.old!r} in {mutation.source}")
                failures += 1
                continue
            outcomes = []
            for text in (original, original.replace(mutation.old, mutation.new)):
                path.write_text(text, encoding="utf-8")
                pid = start_child(workspace, workspace / "src", mutation.tests)
                outcomes.append(status_of(os.waitpid(pid, 0)[1]))
            path.write_text(original, encoding="utf-8")
            ok = outcomes == ["survived", "killed"]  # the tests pass unmutated, fail mutated
            failures += not ok
            print(f"{'killed' if ok else 'PROBLEM ' + str(outcomes):10} {mutation.label}")
            for test in mutation.tests:
                print(f"{'':10}   {test}")
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("modules", nargs="*", metavar="MODULE", help=", ".join(TARGETS))
    parser.add_argument("--list", action="store_true", help="print the modules and their tests")
    parser.add_argument(
        "--named",
        action="store_true",
        help="check that each hand mutation issue #19 lists is killed by its named test",
    )
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at once (default 1)")
    parser.add_argument("--only", choices=("mutmut", "supplement"), help="run one engine only")
    parser.add_argument("--show", action="store_true", help="show the diff of every survivor")
    parser.add_argument("--keep", action="store_true", help="keep the work copies")
    parser.add_argument("--json", type=Path, help="write every mutant's status to this file")
    parser.add_argument(
        "--survivors-of",
        type=Path,
        metavar="JSON",
        help="an earlier --json: run only the mutants that survived it (same sources only)",
    )
    args = parser.parse_args(argv)
    if args.list:
        for key, target in TARGETS.items():
            print(f"{key:11} {target.source}")
            for test in target.tests:
                print(f"{'':11}   {test}")
        return 0
    if args.named:
        sys.dont_write_bytecode = True
        return run_named()
    unknown = [m for m in args.modules if m not in TARGETS]
    if unknown:
        parser.error(f"unknown module {unknown[0]!r}: choose from {', '.join(TARGETS)}")
    sys.dont_write_bytecode = True
    engines = {args.only} if args.only else {"mutmut", "supplement"}
    earlier: dict[str, Any] = {}
    if args.survivors_of:
        earlier = json.loads(args.survivors_of.read_text(encoding="utf-8"))
    results: list[ModuleResult] = []
    for key in args.modules or TARGETS:
        results.append(run_module(key, args.jobs, engines, args.keep, earlier.get(key)))
        if args.json:  # after each module, so a long run keeps what it finished
            write_json(args.json, results)
    return report(results, args.show)


if __name__ == "__main__":
    sys.exit(main())
