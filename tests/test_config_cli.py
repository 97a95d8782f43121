"""``buttress config ...``: round trips across invocations, secrets masked, bad input exits 2."""

from __future__ import annotations

import io
import json
import math
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buttress.cli import build_parser as parser
from buttress.cli import config as cli
from buttress.config import check_json
from buttress.config._values import JSONValue
from buttress.errors import ValidationError
from buttress.log import MASK, configure_logging
from cli_support import set_up

SECRET = "hunter2-cli-secret-value"


pytestmark = pytest.mark.usefixtures("cli_logging")


@pytest.fixture
def sqlite_dsn(sqlite_dsn: str) -> str:
    """A SQLite file ``buttress migrate`` has set up: the CLI never migrates on its own."""
    return set_up(sqlite_dsn)


@pytest.fixture
def postgres_dsn(postgres_dsn: str) -> str:
    """A PostgreSQL database ``buttress migrate`` has set up."""
    return set_up(postgres_dsn)


def run(dsn: str, *argv: str) -> int:
    args = parser().parse_args(["config", *argv, "--dsn", dsn])
    code: int = args.handler(args)
    return code


def run_json(capsys: pytest.CaptureFixture[str], dsn: str, *argv: str, code: int = 0) -> object:
    capsys.readouterr()
    assert run(dsn, *argv, "--json") == code
    return json.loads(capsys.readouterr().out)


def test_set_then_get_list_history_across_invocations(
    sqlite_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(sqlite_dsn, "set", "max_upload_mb", "50", "--updated-by", "ann",
               "--reason", "first", "--description", "upload cap") == 0  # fmt: skip
    out = capsys.readouterr().out
    assert out.startswith("set max_upload_mb = 50  (all, v1,")
    assert "by ann" in out
    assert "# upload cap" in out
    entry = run_json(capsys, sqlite_dsn, "set", "max_upload_mb", "100", "--updated-by", "bob")
    assert isinstance(entry, dict)
    assert (entry["value"], entry["version"], entry["updated_by"]) == (100, 2, "bob")

    got = run_json(capsys, sqlite_dsn, "get", "max_upload_mb")
    assert isinstance(got, dict)
    assert got["value"] == 100
    assert got["environment"] == "all"
    assert got["sensitive"] is False
    assert got["redacted"] is False
    assert run(sqlite_dsn, "get", "max_upload_mb") == 0
    assert capsys.readouterr().out.startswith("max_upload_mb = 100  (all, v2,")

    run(sqlite_dsn, "set", "greeting", '"hello"')
    run(sqlite_dsn, "set", "servers", '{"a": [1, 2.5, null, true]}')
    listed = run_json(capsys, sqlite_dsn, "list")
    assert isinstance(listed, list)
    assert [(e["key"], e["value"]) for e in listed] == [
        ("greeting", "hello"),
        ("max_upload_mb", 100),
        ("servers", {"a": [1, 2.5, None, True]}),
    ]

    history = run_json(capsys, sqlite_dsn, "history", "max_upload_mb")
    assert isinstance(history, list)
    assert [(c["version"], c["action"], c["old_value"], c["new_value"]) for c in history] == [
        (2, "update", 50, 100),
        (1, "create", None, 50),
    ]
    assert (history[1]["changed_by"], history[1]["reason"]) == ("ann", "first")
    assert run(sqlite_dsn, "history", "max_upload_mb", "--limit", "1") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    assert "update  50 -> 100  by bob" in lines[0]


def test_environments_resolve_specific_first(
    sqlite_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run(sqlite_dsn, "set", "limit", "10")
    run(sqlite_dsn, "set", "limit", "20", "--environment", "production")
    run(sqlite_dsn, "set", "only_dev", "1", "-e", "development")
    production = run_json(capsys, sqlite_dsn, "get", "limit", "-e", "production")
    staging = run_json(capsys, sqlite_dsn, "get", "limit", "-e", "staging")
    everywhere = run_json(capsys, sqlite_dsn, "get", "limit")
    assert isinstance(production, dict)
    assert isinstance(staging, dict)
    assert isinstance(everywhere, dict)
    assert (production["value"], production["environment"]) == (20, "production")
    assert (staging["value"], staging["environment"]) == (10, "all")
    assert everywhere["value"] == 10

    everything = run_json(capsys, sqlite_dsn, "list")
    assert isinstance(everything, list)
    assert len(everything) == 3
    production_view = run_json(capsys, sqlite_dsn, "list", "-e", "production")
    assert isinstance(production_view, list)
    assert sorted((e["key"], e["environment"]) for e in production_view) == [
        ("limit", "all"),
        ("limit", "production"),
    ]
    history = run_json(capsys, sqlite_dsn, "history", "limit", "-e", "production")
    assert isinstance(history, list)
    assert [c["new_value"] for c in history] == [20]


def test_sensitive_value_never_printed_unless_revealed(
    sqlite_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(level="DEBUG", stream=sys.stderr)  # every log line, on captured stderr
    capsys.readouterr()
    transcript = []
    for argv, expected in (
        (["set", "db_password", json.dumps(SECRET), "--sensitive", "--reason", "rotate"], 0),
        (["set", "db_password", json.dumps(SECRET + "-2")], 0),  # stays sensitive
        (["get", "db_password"], 0),
        (["get", "db_password", "-e", "production"], 0),
        (["list"], 0),
        (["list", "-e", "production"], 0),
        (["history", "db_password"], 0),
        (["revert", "db_password", "1"], 0),
        (["set", "db_password", "not json " + SECRET], 2),  # refused without echoing it
        (["set", "db_password", f'["{SECRET}", NaN]'], 2),
    ):
        for extra in ([], ["--json"]):
            code = run(sqlite_dsn, *argv, *extra)
            captured = capsys.readouterr()
            assert code == expected, (argv, extra, captured.err)
            transcript.append((argv, extra, captured.out, captured.err))
    for argv, extra, out, err in transcript:
        assert SECRET not in out, (argv, extra)
        assert SECRET not in err, (argv, extra)
    assert any(MASK in out for _argv, _extra, out, _err in transcript)
    assert any("config.changed" in err for _argv, _extra, _out, err in transcript)

    listed = run_json(capsys, sqlite_dsn, "list")
    assert isinstance(listed, list)
    assert listed[0]["value"] == MASK
    assert listed[0]["redacted"] is True
    history = run_json(capsys, sqlite_dsn, "history", "db_password")
    assert isinstance(history, list)
    # Each write above ran twice (text, then --json): 2 sets, 2 updates, 2 reverts.
    assert [(c["old_value"], c["new_value"]) for c in history] == [(MASK, MASK)] * 5 + [
        (None, MASK)
    ]

    revealed = run_json(capsys, sqlite_dsn, "get", "db_password", "--reveal")
    assert isinstance(revealed, dict)
    assert revealed["value"] == SECRET  # reverted to version 1
    assert revealed["redacted"] is False
    assert run(sqlite_dsn, "get", "db_password", "--reveal") == 0
    assert f'db_password = "{SECRET}"' in capsys.readouterr().out


def test_no_sensitive_makes_a_secret_plain_explicitly(
    sqlite_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run(sqlite_dsn, "set", "token", '"abc"', "--sensitive")
    run(sqlite_dsn, "set", "token", '"def"')
    kept = run_json(capsys, sqlite_dsn, "get", "token")
    assert isinstance(kept, dict)
    assert (kept["sensitive"], kept["value"]) == (True, MASK)
    run(sqlite_dsn, "set", "token", '"prod"', "-e", "production")  # overrides a secret
    override = run_json(capsys, sqlite_dsn, "get", "token", "-e", "production")
    assert isinstance(override, dict)
    assert (override["environment"], override["sensitive"]) == ("production", True)
    run(sqlite_dsn, "set", "token", '"public"', "--no-sensitive")
    plain = run_json(capsys, sqlite_dsn, "get", "token")
    assert isinstance(plain, dict)
    assert (plain["sensitive"], plain["value"]) == (False, "public")


def test_value_from_stdin(
    sqlite_dsn: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(SECRET) + "\n"))
    assert run(sqlite_dsn, "set", "api_key", "-", "--sensitive") == 0
    assert SECRET not in capsys.readouterr().out
    revealed = run_json(capsys, sqlite_dsn, "get", "api_key", "--reveal")
    assert isinstance(revealed, dict)
    assert revealed["value"] == SECRET


def test_missing_key_exits_1(sqlite_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(sqlite_dsn, "get", "nope") == 1
    captured = capsys.readouterr()
    assert "config 'nope' is not set for all" in captured.err
    assert captured.out == ""
    assert run_json(capsys, sqlite_dsn, "get", "nope", code=1) is None
    assert run(sqlite_dsn, "delete", "nope") == 1
    run(sqlite_dsn, "set", "here", "1")
    deleted = run_json(capsys, sqlite_dsn, "delete", "here", "--reason", "cleanup")
    assert deleted == {"key": "here", "environment": "all", "deleted": True}
    assert run(sqlite_dsn, "get", "here") == 1
    history = run_json(capsys, sqlite_dsn, "history", "here")
    assert isinstance(history, list)
    assert [c["action"] for c in history] == ["delete", "create"]
    assert history[0]["reason"] == "cleanup"


def test_revert_and_expected_version(sqlite_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    run(sqlite_dsn, "set", "ratio", "0.5", "--expected-version", "0")
    run(sqlite_dsn, "set", "ratio", "0.75", "--expected-version", "1")
    capsys.readouterr()
    assert run(sqlite_dsn, "set", "ratio", "0.9", "--expected-version", "1") == 2
    captured = capsys.readouterr()
    assert "expected version 1, found 2" in captured.err
    assert captured.out == ""
    reverted = run_json(capsys, sqlite_dsn, "revert", "ratio", "1")
    assert isinstance(reverted, dict)
    assert (reverted["value"], reverted["version"]) == (0.5, 3)
    history = run_json(capsys, sqlite_dsn, "history", "ratio")
    assert isinstance(history, list)
    assert history[0]["action"] == "revert"


def test_maintenance_mode(sqlite_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_json(capsys, sqlite_dsn, "maintenance", "status") == {
        "environment": "all",
        "maintenance_mode": False,
    }
    assert run(sqlite_dsn, "maintenance", "on", "-e", "production", "--reason", "upgrade") == 0
    assert capsys.readouterr().out == "maintenance mode is on for production\n"
    production = run_json(capsys, sqlite_dsn, "maintenance", "status", "-e", "production")
    staging = run_json(capsys, sqlite_dsn, "maintenance", "status", "-e", "staging")
    assert production == {"environment": "production", "maintenance_mode": True}
    assert staging == {"environment": "staging", "maintenance_mode": False}
    assert run(sqlite_dsn, "maintenance", "off", "-e", "production") == 0
    assert capsys.readouterr().out == "maintenance mode is off for production\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["set", "name", "text"], "VALUE: must be JSON"),
        (["set", "name", "text"], """'"text"'"""),
        (["set", "n", "NaN"], "VALUE: must be JSON"),
        (["set", "n", "1", "-e", "Prod"], "environment: must be a lower-case name"),
        (["set", "", "1"], "key: must not be empty"),
        (["set", "bad key", "1"], "key: must be 1-200 characters"),
        (["set", "n", "1", "--expected-version", "-1"], "expected_version"),
        (["get", "n", "-e", "PROD"], "environment"),
        # An empty environment (-e "$ENV" with ENV unset) is not "all".
        (["set", "n", "1", "-e", ""], "environment: must be a lower-case name"),
        (["delete", "n", "-e", ""], "environment: must be a lower-case name"),
        (["maintenance", "on", "-e", ""], "environment: must be a lower-case name"),
        (["list", "-e", ""], "environment: must be a lower-case name"),
        (["history", "n", "--limit", "0"], "limit: must be a positive int"),
        (["revert", "n", "3"], "to_version: no version 3 recorded"),
        (["revert", "n", "0"], "to_version: must be a positive int"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_with_a_message(
    sqlite_dsn: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert run(sqlite_dsn, *argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"buttress config {argv[0]}: ")
    assert message in captured.err
    assert captured.out == ""
    # Refused before anything was written.
    assert run_json(capsys, sqlite_dsn, "list") == []
    assert run_json(capsys, sqlite_dsn, "maintenance", "status")["maintenance_mode"] is False  # type: ignore[index]  # a JSON object


def test_an_unusable_backend_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("nosuch://x", "list") == 2
    assert "buttress config list:" in capsys.readouterr().err


def test_every_action_is_registered() -> None:
    root = parser()
    for action in ("get", "set", "list", "history", "delete", "revert", "maintenance"):
        with pytest.raises(SystemExit) as exit_info:
            root.parse_args(["config", action, "--help"])
        assert exit_info.value.code == 0
    with pytest.raises(SystemExit):
        root.parse_args(["config"])


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=150)
@given(json_values)
def test_parse_value_round_trips_any_json(value: JSONValue) -> None:
    assert cli.parse_value(json.dumps(value)) == value


@settings(max_examples=150)
@given(st.text(min_size=1).filter(lambda t: not _is_json(t)))
def test_parse_value_refuses_non_json(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        cli.parse_value(text)
    assert info.value.field == "VALUE"
    assert "'\"text\"'" in info.value.rule


@settings(max_examples=100)
@given(st.text())
def test_refusal_never_echoes_the_value(text: str) -> None:
    value = "\u00a7" + text  # never JSON, never part of the message
    with pytest.raises(ValidationError) as info:
        cli.parse_value(value)
    assert value not in str(info.value)


def _is_json(text: str) -> bool:
    try:
        value = json.loads(text)
    except ValueError:
        return False
    return not (isinstance(value, float) and not math.isfinite(value))


@pytest.mark.postgres
def test_round_trip_on_postgresql(postgres_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    run(postgres_dsn, "set", "limit", "7", "--updated-by", "ann")
    run(postgres_dsn, "set", "dsn_password", json.dumps(SECRET), "--sensitive")
    run(postgres_dsn, "set", "limit", "8", "-e", "production")
    got = run_json(capsys, postgres_dsn, "get", "limit", "-e", "production")
    assert isinstance(got, dict)
    assert (got["value"], got["environment"]) == (8, "production")
    listed = run_json(capsys, postgres_dsn, "list")
    assert isinstance(listed, list)
    assert {(e["key"], e["environment"]): e["value"] for e in listed} == {
        ("dsn_password", "all"): MASK,
        ("limit", "all"): 7,
        ("limit", "production"): 8,
    }
    for argv in (["get", "dsn_password"], ["history", "dsn_password"], ["list"]):
        assert run(postgres_dsn, *argv) == 0
        captured = capsys.readouterr()
        assert SECRET not in captured.out + captured.err
    revealed = run_json(capsys, postgres_dsn, "get", "dsn_password", "--reveal")
    assert isinstance(revealed, dict)
    assert revealed["value"] == SECRET


def test_through_buttress_main_once_wired(
    sqlite_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from buttress.cli import main

    assert main(["config", "set", "api", json.dumps(SECRET), "--sensitive", "--json",
                 "--dsn", sqlite_dsn]) == 0  # fmt: skip
    assert main(["config", "list", "--json", "--dsn", sqlite_dsn]) == 0
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err
    assert main(["config", "get", "api", "--reveal", "--json", "--dsn", sqlite_dsn]) == 0
    assert json.loads(capsys.readouterr().out)["value"] == SECRET


@pytest.mark.parametrize("depth", [100, 100_000])
def test_a_value_nested_too_deep_says_so_however_deep(depth: int) -> None:
    # 100 levels parse and the store's rule refuses them; 100,000 overflow the
    # parser itself: both get the same precise line.
    text = "[" * depth + "]" * depth
    if depth > 1_000:
        with pytest.raises(ValidationError, match="VALUE: nests deeper than 64 levels"):
            cli.parse_value(text)
    else:
        value = cli.parse_value(text)
        with pytest.raises(ValidationError, match="nests deeper than 64 levels"):
            check_json(value)
