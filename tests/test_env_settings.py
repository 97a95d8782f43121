"""Typed settings from environment variables (``EnvSetting[T]``), their collection by
``StartupValidator``, and ``buttress doctor --require-env`` / ``--startup``.

The pure parts are properties; the command line runs through the installed entry point.
"""

from __future__ import annotations

import enum
import json
import string
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buttress import EnvSetting, EnvSettingError, StartupValidator
from buttress.errors import ValidationError
from buttress.lifecycle import EnvVar, load_required_env, parse_env_spec
from cli_support import buttress

NAMES = st.text(string.ascii_uppercase + "_", min_size=1, max_size=12)
# Marked text that cannot be mistaken for a number, a boolean or a rule's wording.
SECRETS = st.text(string.ascii_letters + string.digits, min_size=4, max_size=20).map(
    lambda s: f"zq{s}#"
)


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


# -- reading ---------------------------------------------------------------------------


@settings(max_examples=200)
@given(st.integers())
def test_int_round_trips_through_its_text(number: int) -> None:
    assert EnvSetting[int]("N").read({"N": f" {number} "}) == number


@settings(max_examples=200)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_round_trips_through_its_text(number: float) -> None:
    assert EnvSetting[float]("F").read({"F": repr(number)}) == number


@given(
    st.sampled_from(["1", "true", "TRUE", " yes", "on", "y", "t"]).map(lambda t: (t, True))
    | st.sampled_from(["0", "false", "No", "off ", "n", "F"]).map(lambda t: (t, False))
)
def test_bool_spellings(case: tuple[str, bool]) -> None:
    text, expected = case
    assert EnvSetting[bool]("B").read({"B": text}) is expected


@settings(max_examples=150)
@given(st.lists(st.integers(), max_size=8), st.booleans())
def test_lists_from_commas_or_json(items: list[int], as_json: bool) -> None:
    text = json.dumps(items) if as_json else ", ".join(str(i) for i in items)
    assert EnvSetting[list[int]]("L").read({"L": text} if text else {"L": "[]"}) == items
    assert EnvSetting[tuple[int, ...]]("L").read({"L": json.dumps(items)}) == tuple(items)
    assert EnvSetting[frozenset[int]]("L").read({"L": json.dumps(items)}) == frozenset(items)


def test_other_types() -> None:
    env = {"LEVEL": "info", "COLOUR": "BLUE", "DIR": "/var/data", "MAP": '{"a": 1}', "PAIR": "x, 2"}
    assert EnvSetting[Literal["debug", "info"]]("LEVEL").read(env) == "info"
    assert EnvSetting[Colour]("COLOUR").read(env) is Colour.BLUE
    assert EnvSetting[Colour]("COLOUR").read({"COLOUR": "red"}) is Colour.RED
    assert EnvSetting[Path]("DIR").read(env) == Path("/var/data")
    assert EnvSetting[dict[str, int]]("MAP").read(env) == {"a": 1}
    assert EnvSetting[tuple[str, int]]("PAIR").read(env) == ("x", 2)
    assert EnvSetting[int | str]("PAIR").read(env) == "x, 2"
    assert EnvSetting("PLAIN").read({"PLAIN": " kept as is "}) == " kept as is "
    assert EnvSetting("T", type=int).read({"T": "3"}) == 3


def test_unset_and_blank_read_as_the_default() -> None:
    port = EnvSetting[int]("PORT", default=8080)
    assert port.read({}) == 8080
    assert port.read({"PORT": "  "}) == 8080
    assert not port.required
    assert EnvSetting[int | None]("OPT").read({}) is None
    assert not EnvSetting[int | None]("OPT").required
    assert EnvSetting[int]("REQ").required


def test_missing_and_empty_name_the_variable_and_the_rule() -> None:
    with pytest.raises(EnvSettingError) as missing:
        EnvSetting[int]("PORT").read({})
    assert str(missing.value) == (
        "environment variable PORT is not set; set it before starting "
        "(expected: an integer, e.g. 8080)"
    )
    assert missing.value.field == "PORT"
    assert isinstance(missing.value, ValidationError)
    with pytest.raises(EnvSettingError, match="PORT is empty"):
        EnvSetting[int]("PORT").read({"PORT": ""})


@settings(max_examples=200)
@given(SECRETS)
def test_a_bad_value_is_never_quoted_back(secret: str) -> None:
    for declared in (
        EnvSetting[int]("X"),
        EnvSetting[float]("X"),
        EnvSetting[bool]("X"),
        EnvSetting[Literal["a", "b"]]("X"),
        EnvSetting[Colour]("X"),
        EnvSetting[list[int]]("X"),
        EnvSetting[dict[str, int]]("X"),
        EnvSetting[str]("X", check=lambda v: "must start with https://"),
    ):
        problem = declared.problem({"X": secret})
        assert problem is not None
        assert problem.startswith("environment variable X is not valid: ")
        assert secret not in problem


def test_a_json_value_of_the_wrong_shape_names_the_path_not_the_value() -> None:
    problem = EnvSetting[dict[str, int]]("LIMITS").problem({"LIMITS": '{"api": "zqsecret"}'})
    assert problem is not None
    assert "zqsecret" not in problem
    assert "expected int" in problem


def test_nan_and_infinity_are_refused() -> None:
    for text in ("nan", "inf", "-Infinity"):
        assert EnvSetting[float]("F").problem({"F": text}) is not None


def test_check_adds_a_rule_of_your_own() -> None:
    workers = EnvSetting[int]("WORKERS", check=lambda n: None if n >= 1 else "must be at least 1")
    assert workers.read({"WORKERS": "4"}) == 4
    assert workers.problem({"WORKERS": "0"}) == (
        "environment variable WORKERS is not valid: must be at least 1 (value not shown)"
    )


def test_declaration_errors() -> None:
    for name in ("", " ", "A=B", "A\x00"):
        with pytest.raises(ValidationError, match="name"):
            EnvSetting[int](name)
    with pytest.raises(ValidationError, match="check"):
        EnvSetting[int]("A", check="no")  # type: ignore[arg-type]


def test_repr_never_shows_a_sensitive_default() -> None:
    assert repr(EnvSetting[int]("PORT", default=8080)) == "EnvSetting[int]('PORT', default=8080)"
    token = EnvSetting[str]("TOKEN", default="zqdefault", sensitive=True)
    assert "zqdefault" not in repr(token)
    assert repr(EnvSetting[str]("TOKEN")) == "EnvSetting[str]('TOKEN', default=MISSING)"


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUTTRESS_TEST_PORT", "9001")
    assert EnvSetting[int]("BUTTRESS_TEST_PORT").read() == 9001


# -- collected by StartupValidator ----------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        NAMES,
        st.sampled_from(["ok", "unset", "empty", "bad"]),
        min_size=1,
        max_size=8,
    )
)
async def test_startup_reports_every_broken_variable_and_only_those(
    states: dict[str, str],
) -> None:
    """Completeness: one error per broken variable, none for a good one, all at once."""
    environ = {}
    for name, state in states.items():
        if state == "ok":
            environ[name] = "42"
        elif state == "empty":
            environ[name] = ""
        elif state == "bad":
            environ[name] = "zqnotanumber#"
    declared: list[Any] = [EnvSetting[int](name) for name in states]
    report = await StartupValidator(required_env=declared, environ=environ).run()
    broken = {name for name, state in states.items() if state != "ok"}
    assert report.success is (not broken)
    assert len(report.errors) == len(broken)
    for name in broken:
        assert any(f"environment variable {name} " in line for line in report.errors)
    assert all("zqnotanumber" not in line for line in report.errors)
    assert {n for n, c in report.checks.items() if c.status == "failed"} == {
        f"env:{n}" for n in broken
    }


async def test_startup_mixes_names_envvars_and_settings() -> None:
    report = await StartupValidator(
        required_env=["A", EnvVar("B", "int"), EnvSetting[int]("C", default=1)],
        environ={"A": "x", "B": "1"},
    ).run()
    assert report.success
    with pytest.raises(ValidationError, match="required_env"):
        StartupValidator(required_env=[object()])  # type: ignore[list-item]


# -- the start-up file and --require-env ------------------------------------------------


def test_parse_env_spec() -> None:
    assert parse_env_spec("PORT:int") == EnvVar("PORT", "int")
    assert parse_env_spec("DATABASE_URL") == EnvVar("DATABASE_URL")
    with pytest.raises(ValidationError, match="require-env: PORT: kind must be one of"):
        parse_env_spec("PORT:integer")


def test_load_required_env_from_a_startup_table(tmp_path: Path) -> None:
    path = tmp_path / "startup.toml"
    path.write_text(
        '[startup]\nrequire_env = ["A", "B:url", {name = "LEVEL", choices = ["debug", "info"]}]\n'
    )
    assert load_required_env(path) == (
        EnvVar("A"),
        EnvVar("B", "url"),
        EnvVar("LEVEL", choices=("debug", "info")),
    )
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.buttress.startup]\nrequire_env = ["X:int"]\n')
    assert load_required_env(pyproject) == (EnvVar("X", "int"),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[other]\n", "has no [startup]"),
        ("[startup]\nrequire_env = 'A'\n", "startup.require_env: must be a list"),
        ("[startup]\nrequire_env = [1]\n", "startup.require_env[0]: must be a name"),
        ("[startup]\nrequire_env = [{nam = 'A'}]\n", "unknown field 'nam'"),
        ("[startup]\nrequire_env = [{name = 'A', kind = 'x'}]\n", "startup.require_env[0].kind"),
        ("[startup]\nrequire = []\n", "startup.require: unknown field"),
        ("[startup\n", "is not valid TOML"),
    ],
)
def test_a_bad_startup_file_is_one_line_naming_the_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "startup.toml"
    path.write_text(text)
    with pytest.raises(ValidationError, match=message.replace("[", r"\[")):
        load_required_env(path)


def test_doctor_require_env_refuses_a_half_configured_release(tmp_path: Path) -> None:
    assert buttress("migrate", cwd=tmp_path).returncode == 0
    args = ("doctor", "--require-env", "DATABASE_URL", "--require-env", "PORT:int")
    half = buttress(*args, cwd=tmp_path, env={"PORT": "zqsecretport"})
    assert half.returncode == 2, half.stdout + half.stderr
    assert "DATABASE_URL is not set" in half.stdout
    assert "PORT is not valid" in half.stdout
    assert "zqsecretport" not in half.stdout + half.stderr

    whole = buttress(
        *args, "--json", cwd=tmp_path, env={"PORT": "8080", "DATABASE_URL": "postgresql://h/db"}
    )
    assert whole.returncode == 0, whole.stdout + whole.stderr
    found = {f["name"]: f for f in json.loads(whole.stdout)["findings"]}
    assert found["PORT"]["level"] == "ok"
    assert found["DATABASE_URL"]["detail"] == "set"
    assert "postgresql://h/db" not in whole.stdout


def test_doctor_startup_file_through_the_entry_point(tmp_path: Path) -> None:
    assert buttress("migrate", cwd=tmp_path).returncode == 0
    (tmp_path / "pyproject.toml").write_text(
        '[tool.buttress.startup]\nrequire_env = ["API_TOKEN", "WORKERS:int"]\n'
    )
    done = buttress(
        "doctor", "--startup", "pyproject.toml", cwd=tmp_path, env={"API_TOKEN": "zqtoken"}
    )
    assert done.returncode == 2
    assert "WORKERS is not set" in done.stdout
    assert "zqtoken" not in done.stdout + done.stderr

    bad = buttress("doctor", "--startup", "missing.toml", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip() == "buttress doctor: startup: file missing.toml does not exist"
    assert bad.stdout == ""

    kind = buttress("doctor", "--json", "--require-env", "PORT:integer", cwd=tmp_path)
    assert kind.returncode == 2
    assert "kind must be one of" in json.loads(kind.stdout)["error"]["message"]
