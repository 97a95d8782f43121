"""The topology DSNs (cluster seeds, sentinels and their service, libpq's host lists,
buttress's own query parameters), the scheme table, Redis Cluster's slot
arithmetic and how its redirections are followed: pure logic, no server."""

from __future__ import annotations

import time
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot as driver_key_slot

from buttress.backends import BACKENDS, backend_class, redact_dsn
from buttress.backends._dsn import _KINDS, parse_dsn
from buttress.backends._redis_topology import (
    SLOTS,
    BlockingCluster,
    ClusterClient,
    CrossSlotError,
    command_slot,
    key_slot,
)
from buttress.backends._resp import Endpoint, ReplyError
from buttress.errors import InvalidDSNError, UnsupportedBackendError

hosts = st.lists(
    st.tuples(
        st.sampled_from(["127.0.0.1", "db1.example", "cache-2", "[::1]"]), st.integers(1, 65535)
    ),
    min_size=1,
    max_size=5,
)
passwords = st.text(min_size=4, max_size=30).filter(lambda s: s.strip() != "")


def test_every_scheme_is_served_by_exactly_one_backend_of_its_kind() -> None:
    served = [scheme for backend in BACKENDS for scheme in backend.schemes]
    assert sorted(served) == sorted(_KINDS)
    for scheme, kind in _KINDS.items():
        assert backend_class(scheme).kind == kind
    with pytest.raises(InvalidDSNError, match="unsupported scheme 'mysql'"):
        backend_class("mysql")


@given(seeds=hosts)
def test_cluster_seeds_round_trip(seeds: list[tuple[str, int]]) -> None:
    listed = ",".join(f"{host}:{port}" for host, port in seeds)
    parsed = parse_dsn(f"redis+cluster://:pw@{listed}")
    assert parsed.kind == "redis"
    assert parsed.hosts == tuple((host.strip("[]"), port) for host, port in seeds)
    assert (parsed.host, parsed.port) == parsed.hosts[0]


@given(sentinels=hosts, service=st.from_regex(r"[a-z][a-z0-9_-]{0,20}", fullmatch=True),
       db=st.none() | st.integers(0, 15))  # fmt: skip
def test_sentinel_dsn_round_trip(
    sentinels: list[tuple[str, int]], service: str, db: int | None
) -> None:
    listed = ",".join(f"{host}:{port}" for host, port in sentinels)
    path = service if db is None else f"{service}/{db}"
    parsed = parse_dsn(f"redis+sentinel://app:pw@{listed}/{path}")
    assert parsed.service == service
    assert parsed.database == (None if db is None else str(db))
    assert parsed.hosts == tuple((host.strip("[]"), port) for host, port in sentinels)
    assert parsed.user == "app"


def test_default_ports_per_scheme() -> None:
    assert parse_dsn("redis+sentinel://s1,s2/mymaster").hosts == (("s1", 26379), ("s2", 26379))
    assert parse_dsn("redis+cluster://n1,n2:7001").hosts == (("n1", 6379), ("n2", 7001))
    assert parse_dsn("postgresql://h1,h2:5433/db").hosts == (("h1", 5432), ("h2", 5433))


@pytest.mark.parametrize(
    ("dsn", "rule"),
    [
        ("redis+sentinel://s1:26379", "needs the master's service name"),
        ("redis+sentinel://s1:26379/", "needs the master's service name"),
        ("redis+sentinel://s1:26379/mymaster/x", "must be a number"),
        ("redis+cluster://n1:7000/3", "only database 0"),
        ("redis+cluster://n1:7000,n2:notaport", "port must be a number"),
        ("postgresql://h1:5432,h2:99999/db", "port must be a number"),
    ],
)
def test_malformed_topology_dsns(dsn: str, rule: str) -> None:
    with pytest.raises(InvalidDSNError, match=rule):
        parse_dsn(dsn)


@given(
    password=passwords, scheme=st.sampled_from(["redis+cluster", "redis+sentinel", "postgresql"])
)
def test_multi_host_passwords_never_shown(password: str, scheme: str) -> None:
    encoded = quote(password, safe="")
    path = {"redis+cluster": "0", "redis+sentinel": "mymaster", "postgresql": "db"}[scheme]
    query = "?pgbouncer=true" if scheme == "postgresql" else ""  # Redis ones take none
    rest = f"h1:1,h2:2/{path}{query}"
    dsn = f"{scheme}://app:{encoded}@{rest}"
    parsed = parse_dsn(dsn)
    assert parsed.password == password
    for shown in (redact_dsn(dsn), repr(parsed), parsed.redacted):
        assert f"{scheme}://app:***@{rest}" in shown


def test_without_query_drops_only_the_named_parameters() -> None:
    parsed = parse_dsn(
        "postgresql://u:p@h/db?sslmode=verify-full&pgbouncer=true&sslrootcert=%2Ftmp%2Fca.crt"
    )
    assert parsed.option("pgbouncer") == "true"
    assert parsed.without_query("pgbouncer") == (
        "postgresql://u:p@h/db?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.crt"
    )
    assert parse_dsn("postgresql://h/db?pgbouncer=1").without_query("pgbouncer") == (
        "postgresql://h/db"
    )
    assert parse_dsn("postgresql://h/db").without_query("pgbouncer") == "postgresql://h/db"


@given(key=st.binary(max_size=64))
def test_key_slot_matches_the_driver(key: bytes) -> None:
    assert key_slot(key) == driver_key_slot(key)
    assert 0 <= key_slot(key) < SLOTS


@given(tag=st.text(min_size=1, max_size=20).filter(lambda t: "}" not in t),
       left=st.text(max_size=10).filter(lambda t: "{" not in t),
       right=st.text(max_size=10))  # fmt: skip
def test_keys_sharing_a_hash_tag_share_a_slot(tag: str, left: str, right: str) -> None:
    assert key_slot(f"{left}{{{tag}}}{right}".encode()) == key_slot(tag.encode())


@given(keys=st.lists(st.text(min_size=1, max_size=12), min_size=2, max_size=6))
def test_a_script_over_several_slots_is_refused_before_sending(keys: list[str]) -> None:
    command: list[str | int] = ["EVALSHA", "0" * 40, len(keys), *keys, "arg"]
    slots = {key_slot(k.encode()) for k in keys}
    if len(slots) == 1:
        assert command_slot(command) == slots.pop()
    else:
        with pytest.raises(CrossSlotError, match="hash tag") as info:
            command_slot(command)
        assert isinstance(info.value, UnsupportedBackendError)
        assert info.value.slots == len(slots)
    assert command_slot(["DEL", keys[0]]) == key_slot(keys[0].encode())
    assert command_slot(["CLUSTER", "SLOTS"]) == key_slot(b"SLOTS")


class _FakeNode:
    """A cluster node that answers from a script: a reply or a ``ReplyError`` per call."""

    def __init__(self, name: str, script: list[object], log: list[tuple[str, bool]]) -> None:
        self.name, self.script, self.log = name, script, log

    def answer(self, asking: bool) -> object:
        self.log.append((self.name, asking))
        reply = self.script.pop(0)
        if isinstance(reply, ReplyError):
            raise reply
        return reply

    def call(self, *args: object, decode: object = None, asking: bool = False) -> object:
        return self.answer(asking)


class _FakeAsyncNode(_FakeNode):
    async def call(self, *args: object, decode: object = None, asking: bool = False) -> object:
        return self.answer(asking)


def _redirect_script() -> dict[tuple[str, int], list[object]]:
    return {
        ("seed", 7000): [ReplyError(f"MOVED {SLOT} owner:7001")],
        ("owner", 7001): [ReplyError(f"ASK {SLOT} importing:7002"), b"done"],
        ("importing", 7002): [ReplyError("TRYAGAIN keys in migration")],
    }


SLOT = key_slot(b"k")
# Where the command goes: MOVED is remembered, ASK sends ASKING first on the
# importing node, TRYAGAIN resends to the owner of the slot as known then.
EXPECTED = [("seed", False), ("owner", False), ("importing", True), ("owner", False)]


def test_the_sync_cluster_client_follows_moved_ask_and_tryagain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log: list[tuple[str, bool]] = []
    nodes = {a: _FakeNode(a[0], s, log) for a, s in _redirect_script().items()}
    client = BlockingCluster(Endpoint(), [("seed", 7000)])
    client._slots.known = True
    monkeypatch.setattr(client, "_node", nodes.__getitem__)
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    assert client.call(b"GET", b"k") == b"done"
    assert log == EXPECTED
    assert client._slots.owner[SLOT] == ("owner", 7001)


async def test_the_async_cluster_client_follows_moved_ask_and_tryagain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log: list[tuple[str, bool]] = []
    nodes = {a: _FakeAsyncNode(a[0], s, log) for a, s in _redirect_script().items()}
    client = ClusterClient(Endpoint(), [("seed", 7000)])
    client._slots.known = True
    monkeypatch.setattr(client, "_node", nodes.__getitem__)
    assert await client.call(b"GET", b"k") == b"done"
    assert log == EXPECTED


def test_an_error_reply_that_is_no_redirection_is_raised_as_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refusal = ReplyError("WRONGTYPE Operation against a key holding the wrong kind of value")
    log: list[tuple[str, bool]] = []
    client = BlockingCluster(Endpoint(), [("seed", 7000)])
    client._slots.known = True
    node = _FakeNode("seed", [refusal], log)
    monkeypatch.setattr(client, "_node", lambda address: node)
    with pytest.raises(ReplyError) as info:
        client.call(b"GET", b"k")
    assert info.value is refusal
