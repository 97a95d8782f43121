"""Step definitions for the OpenFeature Gherkin suites (both the spec's and the SDK's wording).

Written for buttress from the sentences in the feature files; each step only
reads or writes the scenario's ``World``.
"""

from __future__ import annotations

import asyncio
import copy
import re
import time

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import FlagEvaluationOptions, FlagType
from openfeature.hook import Hook
from openfeature.provider import ProviderStatus
from pytest_bdd import given, parsers, then, when

from .world import (
    FLAG_TYPES,
    ContextRecordingProvider,
    RecordingHook,
    World,
    parse_context_value,
    parse_value,
)

_DEFAULT = r"(?:default|fallback)"

# -- providers -------------------------------------------------------------------------------


@given(parsers.re(r"an? (?P<status>stable|not ready|error|fatal|stale) provider"))
def provider_in_state(world: World, status: str) -> None:
    world.install(status)


@given("a stable provider with retrievable context is registered")
def provider_with_retrievable_context(world: World) -> None:
    world.install("stable", record_context=True)


@then(parsers.re(r'the provider status should be "(?P<status>[A-Z_]+)"'))
def provider_status_is(world: World, status: str) -> None:
    assert world.client is not None
    assert world.client.get_provider_status() is ProviderStatus(status)


# -- old wording: "a <type> flag with key K is evaluated with default value V" -------------------


@when(
    parsers.re(
        r"an? (?P<kind>boolean|string|integer|float) flag with key \"(?P<key>[^\"]+)\" "
        r"is evaluated with (?P<details>details and )?default value (?P<default>.+)"
    )
)
def evaluate_typed(world: World, kind: str, key: str, details: str | None, default: str) -> None:
    world.flag_type = FLAG_TYPES[kind]
    world.key = key
    world.default = parse_value(world.flag_type, default)
    world.evaluate()


@when(
    parsers.re(
        r"an object flag with key \"(?P<key>[^\"]+)\" is evaluated with "
        r"(?:details and )?a null default value"
    )
)
def evaluate_object_null_default(world: World, key: str) -> None:
    world.flag_type, world.key, world.default = FlagType.OBJECT, key, None
    world.evaluate()


@then(
    parsers.re(r"the resolved (?P<kind>boolean|string|integer|float) value should be (?P<value>.+)")
)
def resolved_value_is(world: World, kind: str, value: str) -> None:
    assert world.details is not None
    expected = parse_value(FLAG_TYPES[kind], value)
    assert world.details.value == expected
    assert type(world.details.value) is type(expected)


@then(
    parsers.re(
        r"the resolved (?P<kind>boolean|string|integer|float) details value should be "
        r"(?P<value>[^,]+), the variant should be \"(?P<variant>[^\"]*)\", "
        r"and the reason should be \"(?P<reason>[A-Z_]+)\""
    )
)
def resolved_details_are(world: World, kind: str, value: str, variant: str, reason: str) -> None:
    resolved_value_is(world, kind, value)
    assert world.details is not None
    assert world.details.variant == variant
    assert world.details.reason == reason


@then(
    parsers.re(
        r"the resolved object (?:details )?value should be contain fields "
        r"\"(?P<f1>[^\"]+)\", \"(?P<f2>[^\"]+)\", and \"(?P<f3>[^\"]+)\", "
        r"with values \"(?P<v1>[^\"]*)\", \"(?P<v2>[^\"]*)\" and (?P<v3>\d+), respectively"
    )
)
def resolved_object_has(world: World, f1: str, f2: str, f3: str, v1: str, v2: str, v3: str) -> None:
    assert world.details is not None
    value = world.details.value
    assert isinstance(value, dict)
    assert value[f1] is (v1 == "true")
    assert value[f2] == v2
    assert value[f3] == int(v3)


@then(
    parsers.re(
        r"the variant should be \"(?P<variant>[^\"]*)\", "
        r"and the reason should be \"(?P<reason>[A-Z_]+)\""
    )
)
def variant_and_reason_are(world: World, variant: str, reason: str) -> None:
    assert world.details is not None
    assert world.details.variant == variant
    assert world.details.reason == reason


@when(parsers.re(r"context contains keys (?P<keys>.+) with values (?P<values>.+)"))
def context_contains(world: World, keys: str, values: str) -> None:
    names = re.findall(r'"([^"]+)"', keys)
    raw = re.findall(r'"([^"]*)"|(\d+)', values)
    parsed: list[bool | int | str] = []
    for text, number in raw:
        if number:
            parsed.append(int(number))
        elif text in ("true", "false"):
            parsed.append(text == "true")
        else:
            parsed.append(text)
    assert len(names) == len(parsed)
    world.attributes.update(zip(names, parsed, strict=True))


@when(
    parsers.re(
        r"a flag with key \"(?P<key>[^\"]+)\" is evaluated with default value "
        r"\"(?P<default>[^\"]*)\""
    )
)
def evaluate_string_with_context(world: World, key: str, default: str) -> None:
    world.flag_type, world.key, world.default = FlagType.STRING, key, default
    world.evaluate()


@then(parsers.re(r"the resolved string response should be \"(?P<value>[^\"]*)\""))
def resolved_string_response_is(world: World, value: str) -> None:
    assert world.details is not None
    assert world.details.value == value


@then(parsers.re(r"the resolved flag value is \"(?P<value>[^\"]*)\" when the context is empty"))
def resolved_without_context_is(world: World, value: str) -> None:
    details = world.evaluate(context=EvaluationContext())
    assert details.value == value


@when(
    parsers.re(
        r"a non-existent string flag with key \"(?P<key>[^\"]+)\" is evaluated with details "
        rf"and a {_DEFAULT} value \"(?P<default>[^\"]*)\""
    )
)
def evaluate_missing_string(world: World, key: str, default: str) -> None:
    world.flag_type, world.key, world.default = FlagType.STRING, key, default
    world.evaluate()


@when(
    parsers.re(
        r"a string flag with key \"(?P<key>[^\"]+)\" is evaluated as an integer, with details "
        rf"and a {_DEFAULT} value (?P<default>\d+)"
    )
)
def evaluate_string_as_integer(world: World, key: str, default: str) -> None:
    world.flag_type, world.key, world.default = FlagType.INTEGER, key, int(default)
    world.evaluate()


@then(parsers.re(r"the default (?P<kind>string|integer) value should be returned"))
def default_returned(world: World, kind: str) -> None:
    assert world.details is not None
    assert world.flag_type is FLAG_TYPES[kind]
    assert world.details.value == world.default


@then(
    parsers.re(
        r"the reason should indicate an error and the error code should indicate "
        r"an? (?:missing flag|type mismatch) with \"(?P<code>[A-Z_]+)\""
    )
)
def error_reason_and_code(world: World, code: str) -> None:
    assert world.details is not None
    assert world.details.reason == "ERROR"
    assert world.details.error_code == code


# -- new wording: "a <Type>-flag with key K and a fallback value V" ------------------------------


@given(
    parsers.re(
        r"an? (?P<kind>[Bb]oolean|[Ss]tring|[Ii]nteger|[Ff]loat|[Oo]bject)-flag with key "
        rf"\"(?P<key>[^\"]+)\" and a {_DEFAULT} value \"(?P<default>.*)\""
    )
)
def flag_to_evaluate(world: World, kind: str, key: str, default: str) -> None:
    world.flag_type = FLAG_TYPES[kind.lower()]
    world.key = key
    world.default = parse_value(world.flag_type, default)


@when("the flag was evaluated with details")
def evaluated_with_details(world: World) -> None:
    world.evaluate()


@then(parsers.re(r"the resolved details value should be \"(?P<value>.*)\""))
def resolved_details_value_is(world: World, value: str) -> None:
    assert world.details is not None
    expected = parse_value(world.flag_type, value)
    assert world.details.value == expected
    assert type(world.details.value) is type(expected)


@then(parsers.re(r"the reason should be \"(?P<reason>[A-Z_]+)\""))
def reason_is(world: World, reason: str) -> None:
    assert world.details is not None
    assert world.details.reason == reason


@then(parsers.re(r"the error-code should be \"(?P<code>[A-Z_]+)\""))
def error_code_is(world: World, code: str) -> None:
    assert world.details is not None
    assert world.details.error_code == code


@then(parsers.re(r"the flag key should be \"(?P<key>[^\"]+)\""))
def flag_key_is(world: World, key: str) -> None:
    assert world.details is not None
    assert world.details.flag_key == key


@then(parsers.re(r"the variant should be \"(?P<variant>[^\"]*)\""))
def variant_is(world: World, variant: str) -> None:
    assert world.details is not None
    assert world.details.variant == variant


@given(
    parsers.re(
        r"a context containing a key \"(?P<key>[^\"]+)\", with type \"(?P<kind>[A-Za-z]+)\" "
        r"and with value \"(?P<value>[^\"]*)\""
    )
)
def context_attribute(world: World, key: str, kind: str, value: str) -> None:
    world.attributes[key] = parse_context_value(kind, value)


@given(parsers.re(r"a context containing a key \"(?P<key>[^\"]+)\" with null value"))
def context_null_attribute(world: World, key: str) -> None:
    world.attributes[key] = None


# -- hooks ---------------------------------------------------------------------------------------


@given("a client with added hook")
def client_with_hook(world: World) -> None:
    assert world.client is not None
    world.hook = RecordingHook(log=world.hook_log)
    world.client.add_hooks([world.hook])


@then(parsers.re(r"the \"(?P<stage>before|after|error|finally)\" hook should have been executed"))
def hook_ran(world: World, stage: str) -> None:
    assert world.hook is not None
    assert stage in world.hook.stages


def _cell(data_type: str, text: str) -> object:
    if text == "null":
        return None
    if data_type == "boolean":
        return text == "true"
    if data_type == "integer":
        return int(text)
    if data_type == "float":
        return float(text)
    return text


@then(parsers.re(r"the \"(?P<stages>[a-z, ]+)\" hooks should be called with evaluation details"))
def hooks_saw_details(world: World, stages: str, datatable: list[list[str]]) -> None:
    assert world.hook is not None
    header, *rows = datatable
    assert header == ["data_type", "key", "value"]
    for stage in (s.strip() for s in stages.split(",")):
        assert stage in world.hook.stages
        details = world.hook.details[stage]
        for data_type, field, text in rows:
            actual = getattr(details, field)
            assert actual == _cell(data_type, text), (stage, field, actual)


@given("evaluation options containing specific hooks")
def options_with_hooks(world: World) -> None:
    world.option_hooks = [RecordingHook(f"option{i}", world.hook_log) for i in (1, 2)]


@when("the flag was evaluated with details using the evaluation options")
def evaluated_with_options(world: World) -> None:
    hooks: list[Hook] = list(world.option_hooks)
    world.evaluate(options=FlagEvaluationOptions(hooks=hooks))


@then("the specified hooks should execute during evaluation")
def option_hooks_ran(world: World) -> None:
    assert world.option_hooks
    for hook in world.option_hooks:
        assert hook.stages == ["before", "after", "finally"]


@then("the hook order should be maintained")
def option_hook_order(world: World) -> None:
    # before in registration order; after/finally in reverse (spec 4.4.2).
    assert world.hook_log == [
        "option1.before",
        "option2.before",
        "option2.after",
        "option1.after",
        "option2.finally",
        "option1.finally",
    ]


# -- metadata -------------------------------------------------------------------------------------


@then("the resolved metadata should contain")
def metadata_contains(world: World, datatable: list[list[str]]) -> None:
    assert world.details is not None
    header, *rows = datatable
    assert header == ["key", "metadata_type", "value"]
    for key, metadata_type, text in rows:
        assert world.details.flag_metadata.get(key) == _cell(metadata_type.lower(), text)


@then("the resolved metadata is empty")
def metadata_empty(world: World) -> None:
    assert world.details is not None
    assert world.details.error_code is None, world.details.error_message
    assert not world.details.flag_metadata


# -- immutability and async ---------------------------------------------------------------------


@given("an evaluation context with modifiable data")
def modifiable_context(world: World) -> None:
    world.attributes.update({"email": "ballmer@macrosoft.com", "age": 65})
    world.context_snapshot = copy.deepcopy(world.attributes)


@then("the original evaluation context should remain unmodified")
def context_unmodified(world: World) -> None:
    assert world.attributes == world.context_snapshot


@then("the evaluation details should be immutable")
def details_immutable(world: World) -> None:
    assert world.details is not None
    with pytest.raises(AttributeError):
        world.details.value = "changed"


@when("the flag was evaluated with details asynchronously")
def evaluated_async(world: World) -> None:
    started = time.perf_counter()
    asyncio.run(world.evaluate_async())
    world.elapsed = time.perf_counter() - started


@then("the evaluation should complete without blocking")
def completed_without_blocking(world: World) -> None:
    # The async path awaits the store; nothing in it blocks the loop for long.
    assert world.details is not None
    assert world.details.error_code is None, world.details.error_message


# -- context merging ----------------------------------------------------------------------------


@given(
    parsers.re(
        r"A context entry with key \"(?P<key>[^\"]+)\" and value \"(?P<value>[^\"]*)\" "
        r"is added to the \"(?P<level>[A-Za-z ]+)\" level"
    )
)
def context_entry_at_level(world: World, key: str, value: str, level: str) -> None:
    world.levels.setdefault(level, {})[key] = value


@given("A table with levels of increasing precedence")
def levels_table(world: World, datatable: list[list[str]]) -> None:
    world.level_order = [row[0] for row in datatable]


@given(
    parsers.re(
        r"Context entries for each level from API level down to the \"(?P<last>[A-Za-z ]+)\" "
        r"level, with key \"(?P<key>[^\"]+)\" and value \"(?P<value>[^\"]*)\""
    )
)
def context_entries_down_to(world: World, last: str, key: str, value: str) -> None:
    for level in world.level_order:
        world.levels.setdefault(level, {})[key] = level if value == last else value
        if level == last:
            break


@when("Some flag was evaluated")
def some_flag_evaluated(world: World) -> None:
    assert world.client is not None
    levels = world.levels
    if "API" in levels:
        api.set_evaluation_context(EvaluationContext(attributes=dict(levels["API"])))
    if "Transaction" in levels:
        api.set_transaction_context(EvaluationContext(attributes=dict(levels["Transaction"])))
    if "Client" in levels:
        world.client.context = EvaluationContext(attributes=dict(levels["Client"]))
    if "Before Hooks" in levels:
        hook = RecordingHook("before-hooks", world.hook_log)
        hook.before_context = EvaluationContext(attributes=dict(levels["Before Hooks"]))
        world.client.add_hooks([hook])
    invocation = EvaluationContext(attributes=dict(levels.get("Invocation", {})))
    world.flag_type, world.key, world.default = FlagType.BOOLEAN, "boolean-flag", False
    world.evaluate(context=invocation)


@then(
    parsers.re(
        r"The merged context contains an entry with key \"(?P<key>[^\"]+)\" "
        r"and value \"(?P<value>[^\"]*)\""
    )
)
def merged_context_has(world: World, key: str, value: str) -> None:
    provider = world.provider
    assert isinstance(provider, ContextRecordingProvider)
    assert provider.last_context is not None
    assert provider.last_context.attributes.get(key) == value
