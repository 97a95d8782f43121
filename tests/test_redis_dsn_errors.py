"""What an operator reads when a Redis DSN is wrong: one clear line, never a driver's insides.

An unknown query parameter is refused when the DSN is parsed, before anything
connects, on every Redis scheme, naming the parameter and the supported ones
(it used to reach redis-py as a keyword argument and come back as a
``TypeError``). A wrong password at the sentinels says authentication failed,
at once; unreachable sentinels are named; no message carries redis-py's
client, pool or connection reprs (``MasterNotFoundError`` used to). Through the
``buttress`` command every failure is one line on stderr, exit status 2, with
no password in it.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from buttress import connect
from buttress.backends._dsn import parse_dsn
from buttress.errors import BackendUnavailableError, InvalidDSNError
from cli_support import buttress
from servers import free_port
from topology import RedisCluster, RedisSentinel

PASSWORD = "Pa55-w0rd-never-echoed"
TRACEBACK = "Traceback (most recent call last)"

# Port 1 refuses at once: a DSN refused at parse time never gets that far.
BOGUS = {
    "redis": f"redis://:{PASSWORD}@127.0.0.1:1/0?bogus=1",
    "rediss": f"rediss://:{PASSWORD}@127.0.0.1:1/0?ssl_ca_certs=/ca.crt&bogus=1",
    "redis+cluster": f"redis+cluster://:{PASSWORD}@127.0.0.1:1,127.0.0.1:2?bogus=1",
    "redis+sentinel": f"redis+sentinel://:{PASSWORD}@127.0.0.1:1/mymaster/0?bogus=1",
}


def one_line_failure(done: subprocess.CompletedProcess[str], command: str) -> str:
    """The one line ``buttress COMMAND`` printed on stderr, after checking its shape."""
    assert done.returncode == 2, done.stdout + done.stderr
    assert TRACEBACK not in done.stderr
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith(f"buttress {command}: ")
    assert PASSWORD not in line
    assert "object at 0x" not in line
    assert "<redis." not in line
    return line


# Unknown query parameters


@pytest.mark.parametrize("scheme", sorted(BOGUS))
def test_an_unknown_query_parameter_is_refused_at_parse_time(scheme: str) -> None:
    with pytest.raises(InvalidDSNError) as info:
        parse_dsn(BOGUS[scheme])
    message = str(info.value)
    assert info.value.field == "dsn"
    assert "'bogus'" in message
    assert f"{scheme}://" in message
    assert "supported: " in message
    assert PASSWORD not in message
    assert "TypeError" not in message


@pytest.mark.parametrize("scheme", ["redis", "rediss"])
def test_the_message_lists_the_supported_parameters(scheme: str) -> None:
    with pytest.raises(InvalidDSNError) as info:
        parse_dsn(BOGUS[scheme])
    supported = str(info.value).partition("supported: ")[2]
    for name in ("socket_timeout", "client_name", "health_check_interval"):
        assert name in supported
    assert ("ssl_ca_certs" in supported) is (scheme == "rediss")


@pytest.mark.parametrize("scheme", ["redis+cluster", "redis+sentinel"])
def test_cluster_and_sentinel_take_no_query_parameter(scheme: str) -> None:
    with pytest.raises(InvalidDSNError, match=r"supported: none .*connect\(\)"):
        parse_dsn(BOGUS[scheme])


def test_every_unknown_parameter_is_named_once() -> None:
    with pytest.raises(InvalidDSNError) as info:
        parse_dsn("redis://h/0?zeta=1&bogus=2&zeta=3&socket_timeout=1")
    assert "parameters 'bogus', 'zeta' for redis://" in str(info.value)


def test_a_tls_parameter_on_plain_redis_says_it_needs_rediss() -> None:
    with pytest.raises(InvalidDSNError, match=r"'ssl_ca_certs'.*rediss://"):
        parse_dsn("redis://h/0?ssl_ca_certs=/etc/ssl/ca.crt")


@pytest.mark.parametrize(
    "dsn",
    [
        "redis://h/0?socket_timeout=1&socket_connect_timeout=2&client_name=app",
        "redis://h/0?health_check_interval=5&max_connections=8&retry_on_timeout=true",
        "redis://h/0?socket_keepalive=true&protocol=2&timeout=3&db=1",
        "rediss://app:pw@h:6380/0?ssl_ca_certs=/ca.crt&ssl_certfile=/c&ssl_keyfile=/k",
        "rediss://h/0?ssl_cert_reqs=required&ssl_check_hostname=false&ssl_min_version=3",
        "rediss://h/0?ssl_ca_path=/d&ssl_ca_data=x&ssl_ciphers=HIGH&ssl_password=kp",
        "redis+cluster://h:7000,h:7001",
        "redis+sentinel://h:26379/mymaster/0",
    ],
)
def test_supported_parameters_still_parse(dsn: str) -> None:
    assert parse_dsn(dsn).kind == "redis"


@pytest.mark.parametrize("scheme", sorted(BOGUS))
async def test_connect_refuses_before_connecting(scheme: str) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidDSNError, match="'bogus'"):
        await connect(BOGUS[scheme])
    assert time.monotonic() - started < 1  # no connection attempt, no retry


@pytest.mark.parametrize("scheme", sorted(BOGUS))
def test_the_command_line_says_so_in_one_line(tmp_path: Path, scheme: str) -> None:
    line = one_line_failure(
        buttress("config", "list", "--dsn", BOGUS[scheme], cwd=tmp_path), "config list"
    )
    assert "unknown query parameter 'bogus'" in line
    assert "supported: " in line


@pytest.mark.redis
def test_the_command_line_against_a_real_redis(redis_dsn: str, tmp_path: Path) -> None:
    password = redis_dsn.split("://", 1)[1].rpartition("@")[0].partition(":")[2]
    done = buttress("config", "list", "--dsn", redis_dsn + "?bogus=1", cwd=tmp_path)
    line = one_line_failure(done, "config list")
    assert "'bogus'" in line
    assert password not in line


# Redis Sentinel: wrong password, unreachable sentinels


def _with_password(dsn: str, password: str) -> str:
    scheme, _, rest = dsn.partition("://")
    return f"{scheme}://:{password}@{rest.rpartition('@')[2]}"


def _clean(message: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in message
    for internal in ("<redis.", "object at 0x", "ConnectionPool", "Connection(", "retry="):
        assert internal not in message


@pytest.mark.redis_sentinel
async def test_a_wrong_sentinel_password_says_authentication_failed_at_once(
    redis_sentinel: RedisSentinel, redis_sentinel_dsn: str
) -> None:
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError) as info:
        await connect(_with_password(redis_sentinel_dsn, "WRONGpw"), connect_attempts=3)
    message = str(info.value)
    assert "authentication failed" in message.lower()
    assert "after" not in message  # one attempt: an authentication error is not retried
    assert time.monotonic() - started < 2
    for host, port in redis_sentinel.sentinel_addresses:
        assert f"{host}:{port}" in message
    _clean(message, "WRONGpw", redis_sentinel.password)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


@pytest.mark.redis_sentinel
def test_a_wrong_sentinel_password_on_the_command_line(
    redis_sentinel_dsn: str, tmp_path: Path
) -> None:
    dsn = _with_password(redis_sentinel_dsn, "WRONGpw")
    line = one_line_failure(buttress("config", "list", "--dsn", dsn, cwd=tmp_path), "config list")
    assert "authentication failed" in line.lower()
    _clean(line, "WRONGpw")


async def test_unreachable_sentinels_are_named() -> None:
    ports = [free_port(), free_port()]
    dsn = f"redis+sentinel://:{PASSWORD}@127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}/mymaster/0"
    with pytest.raises(BackendUnavailableError) as info:
        await connect(dsn, connect_attempts=2, connect_timeout=1.0)
    message = str(info.value)
    assert "after 2 attempts" in message  # unreachable is worth retrying
    assert "could not reach sentinel" in message
    assert f"127.0.0.1:{ports[0]}, 127.0.0.1:{ports[1]}" in message
    assert "MasterNotFoundError" not in message
    _clean(message, PASSWORD)


def test_unreachable_sentinels_on_the_command_line(tmp_path: Path) -> None:
    port = free_port()
    dsn = f"redis+sentinel://:{PASSWORD}@127.0.0.1:{port}/mymaster/0"
    line = one_line_failure(buttress("config", "list", "--dsn", dsn, cwd=tmp_path), "config list")
    assert f"could not reach sentinel 127.0.0.1:{port}" in line
    _clean(line)


@pytest.mark.redis_sentinel
async def test_an_unknown_service_is_named_and_an_unreachable_sentinel_listed(
    redis_sentinel: RedisSentinel, redis_sentinel_dsn: str
) -> None:
    host, port = redis_sentinel.sentinel_addresses[0]
    dead = free_port()
    dsn = f"redis+sentinel://:{redis_sentinel.password}@127.0.0.1:{dead},{host}:{port}/nosuch/0"
    with pytest.raises(BackendUnavailableError) as info:
        await connect(dsn, connect_attempts=1)
    message = str(info.value)
    assert f"{host}:{port} named no master for service 'nosuch'" in message
    assert f"could not reach sentinel 127.0.0.1:{dead}" in message
    _clean(message, redis_sentinel.password)


@pytest.mark.redis_sentinel
async def test_one_unreachable_sentinel_among_good_ones_is_no_failure(
    redis_sentinel: RedisSentinel, redis_sentinel_dsn: str
) -> None:
    good = ",".join(f"{h}:{p}" for h, p in redis_sentinel.sentinel_addresses)
    dsn = f"redis+sentinel://:{redis_sentinel.password}@127.0.0.1:{free_port()},{good}/mymaster/0"
    async with connect(dsn) as backend:
        assert await backend.ping() >= 0


@pytest.mark.redis
async def test_a_data_node_named_as_a_sentinel_says_it_is_not_one(redis_dsn: str) -> None:
    address = redis_dsn.rpartition("@")[2].partition("/")[0]
    password = redis_dsn.split("://", 1)[1].rpartition("@")[0].partition(":")[2]
    with pytest.raises(BackendUnavailableError) as info:
        await connect(f"redis+sentinel://:{password}@{address}/mymaster/0", connect_attempts=3)
    message = str(info.value)
    assert f"{address} is not a sentinel" in message
    assert "after" not in message  # a server that is no sentinel will not become one
    _clean(message, password)


# Redis Cluster: the same promises (redis-py wraps these in RedisClusterException)


@pytest.mark.redis_cluster
async def test_a_wrong_cluster_password_says_authentication_failed_at_once(
    redis_cluster: RedisCluster, redis_cluster_dsn: str
) -> None:
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError) as info:
        await connect(_with_password(redis_cluster_dsn, "WRONGpw"), connect_attempts=3)
    message = str(info.value)
    assert "AuthenticationError" in message
    assert "after" not in message  # not retried
    assert time.monotonic() - started < 2
    _clean(message, "WRONGpw", redis_cluster.password)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


async def test_unreachable_cluster_seeds_are_retried_then_one_clear_error() -> None:
    dsn = f"redis+cluster://:{PASSWORD}@127.0.0.1:{free_port()}"
    with pytest.raises(BackendUnavailableError) as info:
        await connect(dsn, connect_attempts=2, connect_timeout=1.0)
    message = str(info.value)
    assert "after 2 attempts" in message
    _clean(message, PASSWORD)


@pytest.mark.redis
async def test_a_single_redis_named_as_a_cluster_is_one_clear_error(redis_dsn: str) -> None:
    address = redis_dsn.rpartition("@")[2].partition("/")[0]
    password = redis_dsn.split("://", 1)[1].rpartition("@")[0].partition(":")[2]
    with pytest.raises(BackendUnavailableError, match=r"[Cc]luster mode is not enabled") as info:
        await connect(f"redis+cluster://:{password}@{address}", connect_attempts=3)
    assert "after" not in str(info.value)
    _clean(str(info.value), password)
