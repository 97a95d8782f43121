"""Built-in system checks: disk and memory usage, TCP reachability and any
client's ping, against the real file system, /proc and real sockets and Redis."""

from __future__ import annotations

import asyncio
import inspect
import shutil
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buttress.errors import ValidationError
from buttress.health import HealthRegistry, Status
from buttress.health.builtin import (
    disk_usage,
    memory_fraction,
    memory_usage,
    reachable,
    tcp_reachable,
)

# -- disk ---------------------------------------------------------------------


def test_disk_usage_measures_the_real_file_system(tmp_path: Path) -> None:
    usage = shutil.disk_usage(tmp_path)
    used = usage.used / usage.total
    result = disk_usage(str(tmp_path), degraded_at=1.0, unhealthy_at=1.0)()
    assert result.status is Status.HEALTHY
    assert result.measurement == "diskUsage"
    assert result.observed_unit == "percent"
    assert result.observed_value == pytest.approx(used * 100, abs=1.0)
    if used > 0.01:
        degraded = disk_usage(str(tmp_path), degraded_at=0.0, unhealthy_at=1.0)()
        assert degraded.status is Status.DEGRADED
        assert degraded.message is not None
        assert "full" in degraded.message
        assert disk_usage(str(tmp_path), degraded_at=0.0, unhealthy_at=0.0)().status is (
            Status.UNHEALTHY
        )


def test_defaults_follow_the_design() -> None:
    disk = inspect.signature(disk_usage).parameters
    assert (disk["degraded_at"].default, disk["unhealthy_at"].default) == (0.85, 0.95)
    assert inspect.signature(memory_usage).parameters["degraded_at"].default == 0.80


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"degraded_at": 1.5}, "degraded_at"),
        ({"unhealthy_at": -0.1}, "unhealthy_at"),
        ({"degraded_at": 0.9, "unhealthy_at": 0.8}, "degraded_at"),
    ],
)
def test_usage_thresholds_are_checked(options: dict[str, float], field: str) -> None:
    for factory in (disk_usage, memory_usage):
        with pytest.raises(ValidationError) as info:
            factory(**options)
        assert info.value.field == field


# -- memory -------------------------------------------------------------------


def test_memory_usage_reads_this_machine() -> None:
    result = memory_usage(degraded_at=1.0, unhealthy_at=1.0)()
    if result.measurement is None:  # not Linux: says so, never a false healthy
        assert result.status is Status.DEGRADED
        return
    assert result.status is Status.HEALTHY
    assert result.measurement == "memoryUsage"
    assert result.observed_value is not None
    assert 0 < result.observed_value <= 100
    assert memory_usage(degraded_at=0.0, unhealthy_at=1.0)().status is Status.DEGRADED


@given(
    limit=st.integers(1, 2**40),
    current=st.integers(0, 2**40),
    inactive=st.integers(0, 2**40),
)
def test_a_cgroup_v2_limit_counts_the_working_set(limit: int, current: int, inactive: int) -> None:
    read = {
        "/sys/fs/cgroup/memory.max": f"{limit}\n",
        "/sys/fs/cgroup/memory.current": f"{current}\n",
        "/sys/fs/cgroup/memory.stat": f"anon 1\ninactive_file {inactive}\nactive_file 2\n",
        "/proc/meminfo": "MemTotal: 100 kB\nMemAvailable: 50 kB\n",
    }.get
    assert memory_fraction(read) == (max(0, current - inactive) / limit, "container")


@given(total=st.integers(1, 2**40), available=st.integers(0, 2**40))
def test_without_a_limit_the_machine_counts(total: int, available: int) -> None:
    read = {
        "/sys/fs/cgroup/memory.max": "max\n",  # cgroup v2 without a limit
        "/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",  # v1 unlimited
        "/proc/meminfo": f"MemTotal:  {total} kB\nMemFree: 1 kB\nMemAvailable: {available} kB\n",
    }.get
    assert memory_fraction(read) == (max(0.0, 1.0 - available / total), "machine")


def test_cgroup_v1_limit_and_nothing_readable() -> None:
    read = {
        "/sys/fs/cgroup/memory/memory.limit_in_bytes": "1000\n",
        "/sys/fs/cgroup/memory/memory.usage_in_bytes": "900\n",
        "/sys/fs/cgroup/memory/memory.stat": "total_inactive_file 100\n",
    }.get
    assert memory_fraction(read) == (0.8, "container")
    assert memory_fraction(lambda path: None) is None
    assert memory_fraction({"/proc/meminfo": "garbage"}.get) is None


# -- TCP ------------------------------------------------------------------------


@pytest.fixture
async def listening() -> AsyncIterator[int]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # hold the connection open, answer nothing (not even TLS)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield port


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_listening_port_is_reachable(listening: int) -> None:
    for target, port in ((f"127.0.0.1:{listening}", None), ("127.0.0.1", listening)):
        result = await tcp_reachable(target, port)()
        assert result.status is Status.HEALTHY
        assert result.measurement == "responseTime"
        assert result.observed_value is not None
        assert result.observed_value >= 0


async def test_failures_name_the_reason_never_the_address(listening: int) -> None:
    closed = free_port()
    refused = await tcp_reachable(f"127.0.0.1:{closed}")()
    assert (refused.status, refused.message) == (Status.UNHEALTHY, "connection refused")
    unknown = await tcp_reachable("no-such-host.invalid", 6379)()
    assert (unknown.status, unknown.message) == (Status.UNHEALTHY, "name does not resolve")
    # The server accepts but never answers the TLS handshake: bounded by timeout.
    started = asyncio.get_running_loop().time()
    hung = await tcp_reachable(f"127.0.0.1:{listening}", timeout=0.3, tls=True)()
    assert asyncio.get_running_loop().time() - started < 5
    assert (hung.status, hung.message) == (Status.UNHEALTHY, "no connection within 0.3 s")
    for result in (refused, unknown, hung):
        assert "127.0.0.1" not in str(result.message)
        assert str(closed) not in str(result.message)


async def test_a_url_target_with_credentials_never_shows_them(redis_dsn: str) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(redis_dsn)
    secret_url = f"redis://admin:hunter2@{parts.hostname}:{parts.port}/0"
    registry = HealthRegistry()
    registry.register("cache", tcp_reachable(secret_url))
    registry.register("cache_down", tcp_reachable(f"redis://admin:hunter2@127.0.0.1:{free_port()}"))
    report = await registry.run()
    assert report.components["cache"].status is Status.HEALTHY
    assert report.components["cache_down"].status is Status.UNHEALTHY
    assert "hunter2" not in str(report.to_dict())
    assert "admin" not in str(report.to_dict())


@pytest.mark.parametrize(
    ("target", "port", "field"),
    [
        ("", None, "target"),
        ("cache", None, "port"),
        ("cache:6379", 6380, "port"),
        ("cache:70000", None, "port"),
        ("unknownscheme://cache", None, "port"),
        ("redis://", None, "target"),
        ("redis://cache:notaport", None, "target"),
    ],
)
def test_bad_targets_are_refused_at_construction(target: str, port: int | None, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        tcp_reachable(target, port)
    assert info.value.field == field


@given(
    user=st.text("abcdefgh", min_size=1, max_size=8),
    password=st.text("xyz0123456789", min_size=1, max_size=12),
    scheme=st.sampled_from(["redis", "amqp", "kafka", "postgresql", "nats"]),
)
def test_urls_get_their_scheme_port_and_no_credentials(
    user: str, password: str, scheme: str
) -> None:
    from buttress.health.builtin import DEFAULT_PORTS, _host_and_port

    assert _host_and_port(f"{scheme}://{user}:{password}@svc.internal/x", None) == (
        "svc.internal",
        DEFAULT_PORTS[scheme],
    )
    assert _host_and_port(f"{scheme}://{user}:{password}@[::1]:1234", None) == ("::1", 1234)


# -- any client's ping --------------------------------------------------------------


async def test_reachable_wraps_a_real_redis_client(redis_dsn: str) -> None:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_dsn)
    try:
        result = await reachable(client.ping)()
        assert result.status is Status.HEALTHY
        assert result.measurement == "responseTime"
    finally:
        await client.aclose()


async def test_reachable_answers_no_slow_and_sync() -> None:
    assert (await reachable(lambda: False)()).status is Status.UNHEALTHY
    assert (await reachable(lambda: None)()).status is Status.UNHEALTHY
    assert (await reachable(lambda: "PONG")()).status is Status.HEALTHY

    async def slow() -> bool:
        await asyncio.sleep(0.05)
        return True

    result = await reachable(slow, degraded_after=0.01)()
    assert result.status is Status.DEGRADED
    with pytest.raises(ValidationError):
        reachable("not callable")  # type: ignore[arg-type]


async def test_a_raising_probe_is_unhealthy_in_a_registry() -> None:
    def broken() -> bool:
        raise ConnectionError("queue down")

    registry = HealthRegistry()
    registry.register("queue", reachable(broken))
    report = await registry.run()
    assert report.components["queue"].status is Status.UNHEALTHY


def test_tls_context_is_accepted() -> None:
    tcp_reachable("127.0.0.1:1", tls=ssl.create_default_context())
