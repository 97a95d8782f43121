"""``buttress monitor``: rule specs, rule files, and the command over a recorded SQLite history."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from buttress import connect
from buttress.cli import build_parser as parser
from buttress.errors import ValidationError
from buttress.health import ComponentStatus, HealthReport, Status
from buttress.monitoring import (
    AlertLevel,
    DropRule,
    FlatRule,
    HealthHistory,
    SpikeRule,
    load_rules,
    parse_rule,
)
from cli_support import set_up

START = datetime(2024, 3, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


pytestmark = pytest.mark.usefixtures("cli_logging")


@pytest.fixture
def sqlite_dsn(sqlite_dsn: str) -> str:
    """A SQLite file ``buttress migrate`` has set up: the CLI never migrates on its own."""
    return set_up(sqlite_dsn)


def run(dsn: str, *argv: str) -> int:
    args = parser().parse_args(["monitor", *argv, "--dsn", dsn])
    code: int = args.handler(args)
    return code


def record(dsn: str, signups: list[float], latencies: list[float] | None = None) -> None:
    """One run per hour from START, with ``signups`` and the db's latency."""

    async def main() -> None:
        async with connect(dsn) as backend:
            history = HealthHistory(backend, retention_days=None)
            for hour, value in enumerate(signups):
                latency = latencies[hour] if latencies else 1.0
                report = HealthReport.from_components(
                    {"db": ComponentStatus(Status.HEALTHY, latency_ms=latency)},
                    version="1.0",
                    timestamp=START + hour * HOUR,
                )
                await history.record(report, {"signups": value})

    asyncio.run(main())


def at(hours: float) -> str:
    return (START + timedelta(hours=hours)).isoformat()


@pytest.mark.parametrize(
    ("spec", "rule"),
    [
        ("drop:signups", DropRule("signups")),
        ("drop:signups:0.4", DropRule("signups", warning=0.4)),
        ("drop:signups:40%:80%", DropRule("signups", warning=0.4, critical=0.8)),
        ("spike:errors:1.5:3", SpikeRule("errors", warning=1.5, critical=3.0)),
        ("spike:latency:db", SpikeRule("latency:db")),
        ("spike:latency:db:2", SpikeRule("latency:db", warning=2.0)),
        ("spike:queue:5xx", SpikeRule("queue:5xx")),
        ("flat:signups", FlatRule("signups")),
        ("flat:signups:12h", FlatRule("signups", period=timedelta(hours=12))),
        ("flat:latency:db:90m", FlatRule("latency:db", period=timedelta(minutes=90))),
        ("flat:jobs:2d", FlatRule("jobs", period=timedelta(days=2))),
    ],
)
def test_parse_rule(spec: str, rule: object) -> None:
    assert parse_rule(spec) == rule


@pytest.mark.parametrize(
    ("spec", "rule_words"),
    [
        ("bogus:signups", "KIND:METRIC"),
        ("signups", "non-empty"),
        ("drop:", "non-empty"),
        ("drop:latency:", "component"),
        ("drop:signups:1.5", "below 1"),
        ("drop:signups:0.8:0.5", ">= the warning"),
        ("drop:signups:0.1:0.2:0.3", "at most WARNING and CRITICAL"),
        ("drop:signups:24h", "fractions"),
        ("flat:signups:24", "unit"),
        ("flat:signups:1h:2h", "at most a PERIOD"),
        # Bad arguments are refused, never taken into the metric's name.
        ("flat:signups:1w", "'1w' is not a PERIOD like 24h"),
        ("flat:signups:30min", "'30min' is not a PERIOD"),
        ("drop:signups:-5", "'-5' is not a threshold"),
        ("spike:latency:2x", "'2x' is not a threshold"),
        ("spike:errors:1.0:+3", "'+3' is not a threshold"),
    ],
)
def test_bad_rule_specs_name_the_spec_and_the_rule(spec: str, rule_words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_rule(spec)
    assert spec in caught.value.field
    assert rule_words in caught.value.rule


RULES_TOML = """
[[rule]]
kind = "drop"
metric = "signups"
warning = 0.5
critical = 0.8
window = "12h"
min_samples = 2

[[rule]]
kind = "spike"
metric = "latency:db"

[[rule]]
kind = "flat"
metric = "signups"
period = "6h"
level = "critical"
"""


def test_load_rules_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(RULES_TOML)
    assert load_rules(str(path)) == [
        DropRule("signups", warning=0.5, critical=0.8, window=timedelta(hours=12), min_samples=2),
        SpikeRule("latency:db"),
        FlatRule("signups", period=timedelta(hours=6), level=AlertLevel.CRITICAL),
    ]


@pytest.mark.parametrize(
    ("text", "field_words", "rule_words"),
    [
        ('[[rule]]\nkind = "drop"\nmetric = "m"\nperiod = "1h"\n', "rule[0].period", "not an"),
        ('[[rule]]\nkind = "jump"\nmetric = "m"\n', "rule[0].kind", "drop, spike or flat"),
        ('[[rule]]\nkind = "drop"\n', "rule[0].metric", "non-empty"),
        ('[[rule]]\nkind = "flat"\nmetric = "m"\nperiod = "6"\n', "rule[0].period", "unit"),
        ('[[rule]]\nkind = "flat"\nmetric = "m"\nlevel = "meh"\n', "rule[0].level", "warning"),
        ('[[rule]]\nkind = "drop"\nmetric = "m"\nwarning = "x"\n', "rule[0].warning", "finite"),
        ('[[rule]]\nkind = "spike"\nmetric = "m"\nmin_samples = 0\n', "min_samples", ">= 1"),
        ('[rules]\nkind = "drop"\n', "rules", "[[rule]]"),
        ("rule = 3\n", "rule", "array of tables"),
        ("[[rule]\n", "--rules", "not valid TOML"),
    ],
)
def test_bad_rule_files_name_the_place_and_the_rule(
    tmp_path: Path, text: str, field_words: str, rule_words: str
) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    with pytest.raises(ValidationError) as caught:
        load_rules(str(path))
    assert field_words in caught.value.field
    assert rule_words in caught.value.rule


def test_a_missing_rule_file_is_a_validation_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cannot read"):
        load_rules(str(tmp_path / "absent.toml"))


def test_without_rules_it_reports_healthy_and_says_how_to_add_some(
    sqlite_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(sqlite_dsn) == 0
    out = capsys.readouterr().out
    assert out.startswith("monitor: HEALTHY")
    assert "no rules given" in out
    assert "nothing recorded yet" in out


def test_a_drop_warns_and_exits_1(sqlite_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    record(sqlite_dsn, [120, 130, 110, 40])
    assert run(sqlite_dsn, "--rule", "drop:signups", "--at", at(3)) == 1
    out = capsys.readouterr().out
    assert out.startswith("monitor: WARNING  1 rule over 4 recorded runs")
    assert "[WARN] drop  signups is 67% below its trailing median (40 vs 120)" in out


def test_a_critical_anomaly_exits_2_and_json_has_the_details(
    sqlite_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    record(sqlite_dsn, [100, 100, 100, 100], latencies=[10, 10, 10, 80])
    capsys.readouterr()
    code = run(
        sqlite_dsn, "--rule", "spike:latency:db:1:5", "--rule", "drop:signups", "--at", at(3),
        "--json",
    )  # fmt: skip
    assert code == 2
    payload = json.loads(capsys.readouterr().out)
    assert payload["level"] == "critical"
    assert payload["exit_code"] == 2
    assert payload["runs"] == 4
    assert payload["latest"]["recorded_at"] == at(3)
    assert payload["latest"]["components"]["db"] == {"status": "healthy", "latency_ms": 80.0}
    assert [r["kind"] for r in payload["rules"]] == ["spike", "drop"]
    assert payload["rules"][0]["critical"] == 5.0
    [anomaly] = payload["anomalies"]
    assert anomaly["metric"] == "latency:db"
    assert (anomaly["rule"], anomaly["level"]) == ("spike", "critical")
    assert (anomaly["observed"], anomaly["baseline"]) == (80.0, 10.0)


def test_as_of_an_earlier_time_the_drop_has_not_happened(
    sqlite_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    record(sqlite_dsn, [120, 130, 110, 40])
    assert run(sqlite_dsn, "--rule", "drop:signups", "--at", at(2)) == 0
    assert "no anomalies" in capsys.readouterr().out


def test_rules_from_a_file_and_options_together(
    sqlite_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record(sqlite_dsn, [0] * 8)
    path = tmp_path / "rules.toml"
    path.write_text(RULES_TOML)
    capsys.readouterr()
    assert run(sqlite_dsn, "--rules", str(path), "--rule", "flat:signups:2h", "--at", at(7)) == 2
    out = capsys.readouterr().out
    assert "4 rules over 8 recorded runs" in out
    assert "[CRIT] flat  signups has been 0 for 6 h" in out
    assert "[WARN] flat  signups has been 0 for 2 h" in out


def test_bad_input_exits_2_with_one_line(
    sqlite_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(sqlite_dsn, "--rule", "drop:signups:2") == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("buttress monitor: --rule drop:signups:2")
    assert run(sqlite_dsn, "--at", "yesterday", "--json") == 2
    payload = json.loads(capsys.readouterr().out)
    assert payload["ok"] is False
    assert payload["error"]["type"] == "ValidationError"
    assert payload["error"]["command"] == "monitor"
    assert "--at" in payload["error"]["message"]


@pytest.mark.redis
def test_a_redis_dsn_is_refused(redis_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(redis_dsn, "--rule", "drop:signups") == 2
    assert "HealthHistory" in capsys.readouterr().err
