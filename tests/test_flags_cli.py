"""``buttress flags ...``: create/update across invocations, rollout warning, eval, history,
targeting options, revert (in process and through the installed entry point)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from buttress.cli import build_parser as parser
from buttress.flags import Flag, bucket
from cli_support import buttress, set_up

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
    args = parser().parse_args(["flags", *argv, "--dsn", dsn])
    code: int = args.handler(args)
    return code


def run_json(capsys: pytest.CaptureFixture[str], dsn: str, *argv: str, code: int = 0) -> object:
    capsys.readouterr()
    assert run(dsn, *argv, "--json") == code
    return json.loads(capsys.readouterr().out)


def test_set_creates_then_updates_across_invocations(
    sqlite_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(sqlite_dsn, "set", "new-checkout", "--updated-by", "ann", "--reason", "add") == 0
    assert capsys.readouterr().out.startswith("created new-checkout")
    made = run_json(capsys, sqlite_dsn, "get", "new-checkout")
    assert made == {
        "key": "new-checkout",
        "name": "new-checkout",
        "description": None,
        "enabled": False,
        "users": [],
        "roles": [],
        "percentage": 0.0,
        "enable_at": None,
        "disable_at": None,
    }
    result = run_json(capsys, sqlite_dsn, "set", "new-checkout", "--users", "bob, alice",
                      "--roles", "staff", "--name", "New checkout", "--description", "v2",
                      "--enable-at", "2024-01-01T00:00:00Z")  # fmt: skip
    assert isinstance(result, dict)
    assert result["action"] == "updated"
    assert result["warning"] is None
    flag = result["flag"]
    assert flag["users"] == ["alice", "bob"]
    assert flag["roles"] == ["staff"]
    assert (flag["name"], flag["description"]) == ("New checkout", "v2")
    assert flag["enable_at"] == "2024-01-01T00:00:00+00:00"
    assert flag["enabled"] is False  # untouched fields keep their value

    assert run(sqlite_dsn, "set", "new-checkout", "--enabled") == 0
    assert run(sqlite_dsn, "set", "other", "--enabled", "--percentage", "25") == 0
    capsys.readouterr()
    listed = run_json(capsys, sqlite_dsn, "list")
    assert isinstance(listed, list)
    assert [(f["key"], f["enabled"], f["percentage"]) for f in listed] == [
        ("new-checkout", True, 0.0),
        ("other", True, 25.0),
    ]
    assert run(sqlite_dsn, "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["new-checkout", "on"]
    assert "users=alice,bob" in lines[0]
    assert lines[1].split() == ["other", "on", "25%"]

    cleared = run_json(capsys, sqlite_dsn, "set", "new-checkout", "--users", "",
                       "--enable-at", "none", "--description", "")  # fmt: skip
    assert isinstance(cleared, dict)
    assert cleared["flag"]["users"] == []
    assert cleared["flag"]["enable_at"] is None
    assert cleared["flag"]["description"] is None


def test_narrowing_a_live_flag_prints_the_rollout_warning(
    sqlite_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run(sqlite_dsn, "set", "search", "--enabled")
    capsys.readouterr()
    assert run(sqlite_dsn, "set", "search", "--percentage", "10") == 0
    captured = capsys.readouterr()
    assert "warning: search: percentage 10 narrows this flag from everyone to 10%" in captured.err
    assert captured.out.startswith("updated search")

    widened = run_json(capsys, sqlite_dsn, "set", "search", "--percentage", "0")
    assert isinstance(widened, dict)
    assert "now on for everyone (it was 10%)" in widened["warning"]

    # Not live: a disabled flag narrows nobody, so no warning.
    run(sqlite_dsn, "set", "dark", "--disabled")
    capsys.readouterr()
    assert run(sqlite_dsn, "set", "dark", "--percentage", "10") == 0
    assert "narrows" not in capsys.readouterr().err
    # Raising an existing rollout is not a narrowing either.
    run(sqlite_dsn, "set", "rollout", "--enabled", "--percentage", "5")
    capsys.readouterr()
    raised = run_json(capsys, sqlite_dsn, "set", "rollout", "--percentage", "50")
    assert isinstance(raised, dict)
    assert raised["warning"] is None


def test_eval_prints_enabled_and_reason(
    sqlite_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run(sqlite_dsn, "set", "beta", "--enabled", "--users", "alice", "--roles", "staff",
        "--percentage", "50", "--disable-at", "2999-01-01T00:00:00+00:00")  # fmt: skip
    capsys.readouterr()
    assert run(sqlite_dsn, "eval", "beta", "--user", "alice") == 0
    assert capsys.readouterr().out == "beta: on (USER_TARGET)\n"
    by_role = run_json(capsys, sqlite_dsn, "eval", "beta", "--user", "zed", "--role", "staff",
                       "--attr", "plan=pro")  # fmt: skip
    assert by_role == {"key": "beta", "enabled": True, "reason": "ROLE_TARGET", "bucket": None,
                       "variant": "on", "value": True}  # fmt: skip

    for user in [f"user-{n}" for n in range(10)]:
        result = run_json(capsys, sqlite_dsn, "eval", "beta", "--user", user)
        assert isinstance(result, dict)
        expected_bucket = bucket("beta", user)
        assert result == {
            "key": "beta",
            "enabled": expected_bucket < 5000,
            "reason": "PERCENTAGE",
            "bucket": expected_bucket,
            "variant": "on" if expected_bucket < 5000 else "off",
            "value": expected_bucket < 5000,
        }
    assert run(sqlite_dsn, "eval", "beta", "--user", "bob") == 0
    text = capsys.readouterr().out
    assert text.startswith("beta: o")
    assert f"(PERCENTAGE, bucket {bucket('beta', 'bob') / 100:.2f})" in text

    late = run_json(capsys, sqlite_dsn, "eval", "beta", "--user", "alice",
                    "--at", "3000-01-01T00:00:00Z")  # fmt: skip
    assert late == {"key": "beta", "enabled": False, "reason": "SCHEDULED_OFF", "bucket": None,
                    "variant": None, "value": None}  # fmt: skip
    run(sqlite_dsn, "set", "beta", "--disabled")
    off = run_json(capsys, sqlite_dsn, "eval", "beta", "--user", "alice")
    assert off == {"key": "beta", "enabled": False, "reason": "DISABLED", "bucket": None,
                   "variant": None, "value": None}  # fmt: skip


def test_unknown_flag_exits_1(sqlite_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(sqlite_dsn, "eval", "ghost", "--user", "alice") == 1
    assert capsys.readouterr().out == "ghost: off (UNKNOWN_FLAG)\n"
    assert run(sqlite_dsn, "get", "ghost") == 1
    captured = capsys.readouterr()
    assert "flag 'ghost' does not exist" in captured.err
    assert captured.out == ""
    assert run_json(capsys, sqlite_dsn, "get", "ghost", code=1) is None
    assert run(sqlite_dsn, "delete", "ghost") == 1


def test_history_and_delete(sqlite_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    run(sqlite_dsn, "set", "promo", "--updated-by", "ann", "--reason", "new")
    run(sqlite_dsn, "set", "promo", "--enabled", "--updated-by", "bob", "--reason", "launch")
    deleted = run_json(capsys, sqlite_dsn, "delete", "promo", "--updated-by", "cy")
    assert deleted == {"key": "promo", "deleted": True}
    assert run(sqlite_dsn, "get", "promo") == 1
    history = run_json(capsys, sqlite_dsn, "history", "promo")
    assert isinstance(history, list)
    assert [(c["version"], c["action"], c["changed_by"], c["reason"]) for c in history] == [
        (3, "delete", "cy", None),
        (2, "update", "bob", "launch"),
        (1, "create", "ann", "new"),
    ]
    assert history[1]["old"]["enabled"] is False
    assert history[1]["new"]["enabled"] is True
    assert history[0]["new"] is None
    assert run(sqlite_dsn, "history", "promo", "--limit", "2") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert "update by bob: launch  [enabled: False -> True]" in lines[1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["set", "f", "--percentage", "101"], "percentage: must be between 0 and 100"),
        (["set", "f", "--percentage", "ten"], "percentage: must be a number"),
        (["set", "f", "--percentage", "nan"], "percentage: must be between 0 and 100"),
        (["set", "f6", "--percentage", "1e-400"],
         "percentage: 1e-400 is not 0 but too small to store: it would be saved as 0 "
         "(a percentage of 0 means no rollout rule)"),
        (["set", "f", "--variants", '{"on": true, "off": false}', "--split",
          '{"on": 1e-400, "off": 100}'], "split: 1e-400 is not 0 but too small to store"),
        (["set", "f", "--enable-at", "2024-01-01T00:00"], "enable_at: must carry a timezone"),
        (["set", "f", "--disable-at", "soon"], "disable_at: must be an ISO 8601 time"),
        (["set", "f", "--enable-at", "2024-02-01T00:00Z", "--disable-at", "2024-01-01T00:00Z"],
         "disable_at: must be after enable_at"),
        (["set", "", "--enabled"], "key: must not be empty"),
        (["set", "bad key"], "key: must be 1-200 characters"),
        (["set", "f", "--name", " "], "name: must be a non-empty str"),
        (["set", "f8", "--name", "n" * 100_000],
         "name: must be at most 200 characters, not 100,000"),
        (["set", "existing", "--description", "d" * 2_001],
         "description: must be at most 2,000 characters, not 2,001"),
        (["set", "f", "--metadata", '{"owner": "' + "o" * 2_001 + '"}'],
         "metadata['owner']: must be at most 2,000 characters"),
        (["set", "existing"], "flags set: give at least one change"),
        (["eval", "existing", "--attr", "plan"], "--attr: must be NAME=VALUE"),
        (["eval", "existing", "--at", "noon"], "at: must be an ISO 8601 time"),
        (["history", "existing", "--limit", "0"], "limit: must be a positive int"),
        (["get", ""], "key: must not be empty"),
        (["set", "f", "--variants", "{a: 1}"], "variants: must be JSON (Expecting property name"),
        (["set", "f", "--variants", '{"a": 1}', "--default-variant", "b"],
         "default_variant: names no variant of this flag (it has a)"),
        (["set", "f", "--rules", '[{"when": [{"attribute": "v", "operator": "semver_gt", '
                                 '"value": "1.0"}]}]'], "rules[0].when[0].value"),
        (["set", "f", "--split", '{"on": 60, "off": 30}'], "split: percentages must add up"),
        (["set", "f", "--rules", '[{"when": [{"attribute": "v", "operator": "matches", '
                                 '"value": "(a+)+$"}]}]'],
         "rules[0].when[0].value: a regular expression with nested repetition could take "
         "exponential time"),
        (["revert", "existing", "0"], "to_version: must be a positive int"),
        (["revert", "existing", "9"], "to_version: no version 9 recorded for 'existing'"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_with_a_message(
    sqlite_dsn: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    run(sqlite_dsn, "set", "existing", "--enabled")
    capsys.readouterr()
    assert run(sqlite_dsn, *argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"buttress flags {argv[0]}: ")
    assert message in captured.err
    assert captured.out == ""


def test_set_refuses_enabled_and_disabled_together(sqlite_dsn: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parser().parse_args(["flags", "set", "f", "--enabled", "--disabled"])
    assert exit_info.value.code == 2


def test_an_unusable_backend_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("nosuch://x", "list") == 2
    assert "buttress flags list:" in capsys.readouterr().err


def test_every_action_is_registered() -> None:
    root = parser()
    for action in ("list", "get", "set", "eval", "history", "delete", "revert"):
        with pytest.raises(SystemExit) as exit_info:
            root.parse_args(["flags", action, "--help"])
        assert exit_info.value.code == 0
    with pytest.raises(SystemExit):
        root.parse_args(["flags"])


@pytest.mark.postgres
def test_round_trip_on_postgresql(postgres_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    run(postgres_dsn, "set", "pg-flag", "--enabled", "--roles", "staff")
    run(postgres_dsn, "set", "pg-flag", "--percentage", "30")
    capsys.readouterr()
    got = run_json(capsys, postgres_dsn, "get", "pg-flag")
    assert isinstance(got, dict)
    assert (got["enabled"], got["roles"], got["percentage"]) == (True, ["staff"], 30.0)
    staff = run_json(capsys, postgres_dsn, "eval", "pg-flag", "--role", "staff")
    assert staff == {"key": "pg-flag", "enabled": True, "reason": "ROLE_TARGET", "bucket": None,
                     "variant": "on", "value": True}  # fmt: skip
    history = run_json(capsys, postgres_dsn, "history", "pg-flag")
    assert isinstance(history, list)
    assert [c["action"] for c in history] == ["update", "create"]


def test_through_buttress_main_once_wired(
    sqlite_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from buttress.cli import main

    assert main(["flags", "set", "wired", "--enabled", "--dsn", sqlite_dsn]) == 0
    capsys.readouterr()
    assert main(["flags", "set", "wired", "--percentage", "10", "--json",
                 "--dsn", sqlite_dsn]) == 0  # fmt: skip
    captured = capsys.readouterr()
    assert json.loads(captured.out)["warning"] is not None  # stdout stays pure JSON
    assert "narrows" in captured.err


def test_revert_restores_an_earlier_version_as_a_new_change(
    sqlite_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run(sqlite_dsn, "set", "promo", "--enabled", "--roles", "staff", "--updated-by", "ann")
    run(sqlite_dsn, "set", "promo", "--percentage", "5", "--roles", "")
    reverted = run_json(capsys, sqlite_dsn, "revert", "promo", "1", "--updated-by", "bob")
    assert isinstance(reverted, dict)
    assert (reverted["roles"], reverted["percentage"]) == (["staff"], 0.0)
    history = run_json(capsys, sqlite_dsn, "history", "promo", "--limit", "1")
    assert isinstance(history, list)
    latest = history[0]
    assert (latest["version"], latest["action"], latest["changed_by"], latest["reason"]) == (
        3, "update", "bob", "revert to version 1",
    )  # fmt: skip
    run(sqlite_dsn, "delete", "promo")
    run(sqlite_dsn, "revert", "promo", "3", "--reason", "undo the delete")
    assert "reverted promo" in capsys.readouterr().out
    assert run_json(capsys, sqlite_dsn, "get", "promo") == reverted
    assert run(sqlite_dsn, "revert", "promo", "4") == 0  # version 4 was the delete
    assert capsys.readouterr().out == "reverted promo to version 4: deleted\n"
    assert run(sqlite_dsn, "get", "promo") == 1


def test_revert_through_the_installed_entry_point(sqlite_dsn: str, tmp_path: Path) -> None:
    def flags(*argv: str) -> subprocess.CompletedProcess[str]:
        return buttress("flags", *argv, "--dsn", sqlite_dsn, cwd=tmp_path)

    assert flags("set", "beta", "--enabled", "--users", "u1").returncode == 0
    assert flags("set", "beta", "--disabled").returncode == 0
    done = flags("revert", "beta", "1", "--updated-by", "ops", "--reason", "incident 7", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["enabled"] is True
    listed = flags("history", "beta", "--json")
    latest = json.loads(listed.stdout)[0]
    assert (latest["changed_by"], latest["reason"], latest["new"]["users"]) == (
        "ops", "incident 7", ["u1"],
    )  # fmt: skip
    wrong = flags("revert", "beta", "7")
    assert wrong.returncode == 2
    assert wrong.stderr.strip().endswith("to_version: no version 7 recorded for 'beta'")
    assert wrong.stdout == ""


def test_targeting_options_and_eval_with_variants(
    sqlite_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = json.dumps([
        {"when": [{"attribute": "age", "operator": "gte", "value": 18},
                  {"attribute": "country", "operator": "in", "value": ["FR", "DE"]}],
         "variant": "eu"},
        {"when": [{"attribute": "app", "operator": "semver_lt", "value": "2.0.0"}],
         "variant": "legacy"},
    ])  # fmt: skip
    created = run_json(capsys, sqlite_dsn, "set", "banner", "--enabled",
                       "--variants", '{"eu": "Bonjour", "legacy": {"v": 1}, "base": "Hi"}',
                       "--rules", rules, "--default-variant", "base",
                       "--metadata", '{"owner": "growth"}')  # fmt: skip
    assert isinstance(created, dict)
    assert created["flag"]["default_variant"] == "base"
    eu = run_json(capsys, sqlite_dsn, "eval", "banner", "--attr", "age=30", "--attr", "country=FR")
    assert eu == {"key": "banner", "enabled": True, "reason": "RULE_MATCH", "bucket": None,
                  "variant": "eu", "value": "Bonjour"}  # fmt: skip
    run(sqlite_dsn, "eval", "banner", "--attr", "age=17", "--attr", "country=FR",
        "--attr", "app=1.9.3")  # fmt: skip
    assert capsys.readouterr().out == 'banner: on variant legacy = {"v": 1} (RULE_MATCH)\n'
    run(sqlite_dsn, "eval", "banner", "--attr", "age=30")
    assert capsys.readouterr().out == 'banner: on variant base = "Hi" (DEFAULT)\n'
    run(sqlite_dsn, "set", "banner", "--rules", "none", "--split", '{"eu": 50, "base": 50}')
    assert "split=eu:50%,base:50%" in capsys.readouterr().out
    split = run_json(capsys, sqlite_dsn, "eval", "banner", "--user", "u1")
    assert isinstance(split, dict)
    assert (split["reason"], split["bucket"]) == ("SPLIT", bucket("banner", "u1"))
    assert split["variant"] == ("eu" if bucket("banner", "u1") < 5000 else "base")


def test_a_stored_pattern_refused_today_is_served_with_a_warning_until_fixed(
    sqlite_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rule an earlier release stored with a catastrophic ``matches`` pattern: ``get``,
    ``list`` and ``eval`` warn (the condition never matches); ``set`` refuses to write
    the flag back until its rules are replaced."""
    run(sqlite_dsn, "set", "redos", "--enabled", "--default-variant", "off")
    data = run_json(capsys, sqlite_dsn, "get", "redos")
    assert isinstance(data, dict)
    data["rules"] = [{"when": [{"attribute": "v", "operator": "matches", "value": "(a+)+$"}]}]
    with sqlite3.connect(sqlite_dsn.removeprefix("sqlite:///")) as db:
        db.execute("UPDATE buttress_flags SET data = ? WHERE key = 'redos'", [json.dumps(data)])
    warning = "warning: redos: rules[0].when[0].value: a regular expression with nested"
    for argv in (["get", "redos"], ["list"], ["eval", "redos", "--attr", "v=" + "a" * 27 + "!"]):
        capsys.readouterr()
        assert run(sqlite_dsn, *argv) == 0
        captured = capsys.readouterr()
        assert warning in captured.err
        assert "this condition never matches meanwhile" in captured.err
    assert captured.out.strip() == "redos: off (DEFAULT)"
    assert run(sqlite_dsn, "set", "redos", "--disabled") == 2
    assert "rules[0].when[0].value: a regular expression" in capsys.readouterr().err
    assert run(sqlite_dsn, "set", "redos", "--disabled", "--rules", "none") == 0
    capsys.readouterr()
    assert run(sqlite_dsn, "get", "redos") == 0
    assert capsys.readouterr().err == ""


def test_a_tiny_percentage_is_kept_and_admits_one_bucket(
    sqlite_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_json(capsys, sqlite_dsn, "set", "f6", "--enabled", "--percentage", "1e-300")
    assert isinstance(result, dict)
    assert result["flag"]["percentage"] == 1e-300
    assert Flag.from_dict(result["flag"]).threshold == 1  # bucket 0 is on
    result = run_json(capsys, sqlite_dsn, "set", "f7", "--percentage", "-0")
    assert isinstance(result, dict)
    assert json.dumps(result["flag"]["percentage"]) == "0.0"
