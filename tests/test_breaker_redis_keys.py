"""The Redis keys of a shared circuit breaker: one hash slot per breaker, whatever its name.

A breaker's two keys must live in one Redis Cluster slot, or its script cannot
run there and the breaker silently falls back to local state. The braces around
the name are the hash tag; a name that would spoil it (``"}pay"`` gives the
empty tag ``{}``) is replaced inside the braces by a digest, as rate-limit keys
are. Ordinary names keep their keys, so a deployment keeps its state.

The slots are computed by redis-py's own CRC16 (``redis.crc.key_slot``), an
implementation independent of buttress's; the real-cluster checks (CLUSTER
KEYSLOT, two instances sharing OPEN) are in tests/test_topology_redis.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from redis.crc import key_slot

from buttress.breaker import RedisBreakerStore, StepParams
from buttress.errors import ValidationError

PARAMS = StepParams(
    failure_threshold=2, recovery_timeout=30.0, half_open_max_calls=1, probe_timeout=60.0
)
_REPLY = [b"closed", b"0", b"0", b"0.000000", b"0", b"allowed", b"", b"0.000000", b"0.000000"]

# Names a user trial, a config file or a tenant id could give a breaker.
HOSTILE_NAMES = [
    "}pay",
    "{pay",
    "{}pay",
    "pay{}",
    "}{",
    "{}",
    "{",
    "}",
    "}}",
    "{{}}",
    "a}b{c}",
    "{user:42}",
    "~h:" + "0" * 32,
    "p" * 5000,
    "}" + "x" * 5000,
    "zahlung-ü-支付-💳",
    "}支付",
    "bad\udc80surrogate",
    "nul\x00inside",
]


class Recording:
    """A stand-in for redis-py's client: records the keys of each script call, as
    redis-py would encode them, and answers a closed circuit."""

    def __init__(self) -> None:
        self.keys: list[list[bytes]] = []

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> list[bytes]:
        # redis-py encodes str arguments as UTF-8, strictly: a lone surrogate fails.
        self.keys.append([str(key).encode("utf-8") for key in keys_and_args[:numkeys]])
        return _REPLY

    eval = evalsha


async def keys_of(name: str, store_prefix: str | None = None) -> list[bytes]:
    client = Recording()
    options = {} if store_prefix is None else {"prefix": store_prefix}
    store = RedisBreakerStore(client, **options)  # type: ignore[arg-type]
    await store.step(name, "read", 0, "", PARAMS)
    (keys,) = client.keys
    return keys


def one_slot(keys: list[bytes]) -> bool:
    return len({key_slot(key) for key in keys}) == 1


_BRACES = st.text(alphabet=st.sampled_from("{}:~h"), max_size=12)
_ANY = st.text(st.characters(exclude_categories=()), max_size=300)  # lone surrogates too


@given(st.one_of(_BRACES, _ANY, st.tuples(_BRACES, _ANY, _BRACES).map("".join)))
@example("}pay")
@example("")
async def test_every_key_of_a_breaker_falls_in_one_slot(name: str) -> None:
    keys = await keys_of(name)
    assert len(keys) == 2
    assert one_slot(keys), (name, keys)


@pytest.mark.parametrize("name", HOSTILE_NAMES)
async def test_hostile_names_keep_one_slot(name: str) -> None:
    assert one_slot(await keys_of(name))


@given(st.text(max_size=60).filter(lambda n: n and "{" not in n and "}" not in n))
@example("payments")
@example("zahlung-ü-支付")
async def test_ordinary_names_keep_their_keys(name: str) -> None:
    if name.startswith("~h:"):
        return  # looks like a digest: digested itself, so no name can stand for another
    tagged = f"buttress:breaker:{{{name}}}".encode()
    assert await keys_of(name) == [tagged, tagged + b":probes"]


@pytest.mark.parametrize("name", ["{pay", "a}b{c}", "{user:42}", "pay{}", "{{}}", "{}", "{}pay"])
async def test_names_whose_braces_already_worked_keep_their_keys(name: str) -> None:
    tagged = f"buttress:breaker:{{{name}}}".encode()
    assert await keys_of(name) == [tagged, tagged + b":probes"]


@pytest.mark.parametrize("name", ["}pay", "}", "}{", "}}", "", "~h:pay", "bad\udc80name"])
async def test_a_name_that_spoils_the_hash_tag_is_digested(name: str) -> None:
    keys = await keys_of(name)
    assert keys[0].startswith(b"buttress:breaker:{~h:")
    assert keys[0].endswith(b"}")
    assert len(keys[0]) == len("buttress:breaker:{~h:}") + 32


@given(st.text(max_size=40), st.text(max_size=40))
@example("}pay", "}pax")
@example("~h:" + "0" * 32, "")
async def test_different_names_never_share_keys(one: str, two: str) -> None:
    if one != two:
        assert set(await keys_of(one)).isdisjoint(await keys_of(two))


@pytest.mark.parametrize("prefix", ["app:", "app{1}:", "{app}:", "app{"])
@pytest.mark.parametrize("name", ["}pay", "payments", "{}"])
async def test_a_custom_prefix_keeps_one_slot(prefix: str, name: str) -> None:
    keys = await keys_of(name, prefix)
    assert keys[0].startswith(prefix.encode())
    assert one_slot(keys)


@pytest.mark.parametrize("prefix", ["app{}:", "{}", "a}{}b"])
def test_a_prefix_that_spoils_every_hash_tag_is_refused(prefix: str) -> None:
    with pytest.raises(ValidationError) as info:
        RedisBreakerStore(Recording(), prefix=prefix)  # type: ignore[arg-type]
    assert info.value.field == "prefix"
