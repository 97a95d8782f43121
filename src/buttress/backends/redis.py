"""The Redis backend: one Redis, a Redis Cluster or a Sentinel-managed master.

redis-py's asyncio client (``client``: ``Redis``, ``RedisCluster`` or a
Sentinel's ``master_for``) is pinged (with retries) on connect; the per-request
hot paths use buttress's own RESP clients for the same topology (``pipelined()``
and ``blocking()``), over TLS too. Only ``RateLimiter`` and ``CircuitBreaker``
keep shared state here; other components refuse it. redis-py is imported only
when a Redis DSN is opened.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from buttress._exceptions import BackendUnavailableError, MissingDependencyError
from buttress._safe import strip_reprs
from buttress.backends._base import Backend
from buttress.backends._dsn import DSN
from buttress.backends._options import check_known, opt_bool, opt_int, opt_seconds
from buttress.backends._retry import Attempts, connect_with_retry, unavailable

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from buttress.backends._redis_topology import (
        BlockingCluster,
        BlockingSentinel,
        ClusterClient,
        SentinelClient,
    )
    from buttress.backends._resp import BlockingClient, Endpoint, PipelinedClient

    AsyncCaller = PipelinedClient | ClusterClient | SentinelClient
    SyncCaller = BlockingClient | BlockingCluster | BlockingSentinel

__all__ = ["RedisBackend", "Topology"]

Topology = Literal["single", "cluster", "sentinel"]
_TOPOLOGIES: dict[str, Topology] = {
    "redis": "single",
    "rediss": "single",
    "redis+cluster": "cluster",
    "redis+sentinel": "sentinel",
}

_OPTIONS = frozenset(
    {
        "create",
        "max_connections",
        "socket_timeout",
        "connect_timeout",
        "connect_attempts",
        "connect_deadline",
        "decode_responses",
        "health_check_interval",
        "pool_timeout",
    }
)


def _driver() -> Any:
    try:
        import redis.asyncio
        import redis.exceptions
    except ImportError:
        raise MissingDependencyError("redis", "redis") from None
    return redis


class RedisBackend(Backend):
    """Redis through redis-py's asyncio client (``client``).

    ``redis://`` and ``rediss://`` (TLS, with redis-py's ``ssl_ca_certs``,
    ``ssl_certfile``, ``ssl_keyfile`` … query parameters) name one server,
    ``redis+cluster://seed[,seed…]`` a Redis Cluster (the other nodes are
    discovered), ``redis+sentinel://sentinel[,sentinel…]/service[/db]`` the master
    that Sentinel names, followed across failovers. ``topology`` says which.

    Options: ``max_connections`` (50), ``socket_timeout`` (seconds, 5),
    ``connect_timeout`` (per attempt, 5), ``connect_attempts`` (3),
    ``connect_deadline`` (10), ``decode_responses`` (False),
    ``health_check_interval`` (seconds, 30), ``pool_timeout`` (seconds a call
    waits for a free connection when all ``max_connections`` are busy; default
    ``socket_timeout``, else ``connect_timeout``).
    """

    kind = "redis"
    schemes = ("redis", "rediss", "redis+cluster", "redis+sentinel")

    def __init__(
        self,
        dsn: DSN,
        client: Redis,
        *,
        topology: Topology = "single",
        endpoint: Endpoint | None = None,
    ) -> None:
        super().__init__(dsn.redacted)
        self.client = client
        self.topology: Topology = topology
        """``"single"``, ``"cluster"`` or ``"sentinel"``: what the DSN named."""
        self._endpoint = endpoint
        self._hosts = dsn.hosts
        self._service = dsn.service
        self._pipelined: AsyncCaller | None = None
        self._blocking: SyncCaller | None = None
        self._fast_checked = False

    def pipelined(self) -> AsyncCaller | None:
        """buttress's own pipelined connections to this topology (one per server
        and event loop, shared by every caller), used for per-request commands
        such as rate-limit decisions; None when the connection needs a
        redis-py-only feature (RESP3, a credential provider…), and callers
        then use ``client``."""
        self._make_fast_clients()
        return self._pipelined

    def blocking(self) -> SyncCaller | None:
        """Pools of blocking sockets to this topology for sync callers (WSGI,
        threads); None in the same cases as ``pipelined()``."""
        self._make_fast_clients()
        return self._blocking

    def _make_fast_clients(self) -> None:
        if self._fast_checked:
            return
        from buttress.backends._redis_topology import (
            BlockingCluster,
            BlockingSentinel,
            ClusterClient,
            SentinelClient,
        )
        from buttress.backends._resp import BlockingClient, PipelinedClient, endpoint_from_pool

        self._fast_checked = True
        if self.topology == "cluster":
            assert self._endpoint is not None
            self._pipelined = ClusterClient(self._endpoint, self._hosts)
            self._blocking = BlockingCluster(self._endpoint, self._hosts)
            return
        if self.topology == "sentinel":
            assert self._endpoint is not None
            assert self._service is not None
            self._pipelined = SentinelClient(self._endpoint, self._hosts, self._service)
            self._blocking = BlockingSentinel(self._endpoint, self._hosts, self._service)
            return
        endpoint = endpoint_from_pool(self.client.connection_pool)
        if endpoint is not None:
            self._pipelined = PipelinedClient(endpoint)
            self._blocking = BlockingClient(endpoint)

    @classmethod
    async def open(cls, dsn: DSN, options: dict[str, object]) -> RedisBackend:
        check_known("redis", options, _OPTIONS)
        # A server's databases are never created here: create= is accepted so
        # one call can open any DSN "without creating anything".
        opt_bool(options, "create", True)
        max_connections = opt_int(options, "max_connections", 50, minimum=1)
        socket_timeout = opt_seconds(options, "socket_timeout", 5.0, allow_none=True)
        connect_timeout = opt_seconds(options, "connect_timeout", 5.0)
        connect_deadline = opt_seconds(options, "connect_deadline", 10.0)
        attempts = opt_int(options, "connect_attempts", 3, minimum=1)
        decode_responses = opt_bool(options, "decode_responses", False)
        health_check_interval = opt_int(options, "health_check_interval", 30, minimum=0)
        pool_timeout = opt_seconds(options, "pool_timeout", socket_timeout or connect_timeout)
        assert connect_deadline is not None
        topology = _TOPOLOGIES[dsn.scheme]

        driver = _driver()
        errors = driver.exceptions
        failure: BackendUnavailableError | None = None
        common: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": connect_timeout,
            "decode_responses": decode_responses,
            "health_check_interval": health_check_interval,
        }
        endpoint: Endpoint | None = None
        try:
            if topology == "cluster":
                client, endpoint = _cluster_client(driver, dsn, common, max_connections)
            elif topology == "sentinel":
                client, endpoint = _sentinel_client(driver, dsn, common, max_connections)
            else:
                # A blocking pool: past max_connections a call waits for a free
                # connection (up to pool_timeout) instead of failing at once with
                # MaxConnectionsError, which made a healthy Redis look unreachable
                # under a burst of concurrent calls.
                pool = driver.asyncio.BlockingConnectionPool.from_url(
                    dsn.secret_url,
                    max_connections=max_connections,
                    timeout=pool_timeout,
                    **common,
                )
                client = driver.asyncio.Redis.from_pool(pool)
        except (ValueError, TypeError, OSError) as exc:
            failure = unavailable(dsn, exc)
        if failure is not None:
            raise failure

        def should_retry(exc: BaseException) -> bool:
            # redis-py's AuthenticationError is a ConnectionError: retrying cannot
            # fix it, nor a certificate the CA does not vouch for.
            if isinstance(exc, errors.AuthenticationError | errors.ResponseError):
                return False
            if isinstance(exc, errors.RedisClusterException):
                # "Redis Cluster cannot be connected": retry as its cause says.
                return exc.__cause__ is not None and should_retry(exc.__cause__)
            if _bad_certificate(exc):
                return False
            return isinstance(
                exc, OSError | TimeoutError | errors.ConnectionError | errors.TimeoutError
            )

        async def ping_once() -> None:
            if topology == "sentinel":
                # redis-py's own "no master found" error embeds each sentinel
                # client's repr and reads the same for a wrong password as for
                # a sentinel that is down: ask first, and say which it was.
                assert dsn.service is not None
                await _ask_sentinels(client.buttress_sentinels, dsn.service, errors)
            await client.ping()

        counter = Attempts()
        try:
            await connect_with_retry(
                ping_once,
                should_retry=should_retry,
                attempts=attempts,
                deadline=connect_deadline,
                counter=counter,
            )
        except (OSError, TimeoutError, errors.RedisError, errors.RedisClusterException) as exc:
            failure = unavailable(dsn, _answer(exc, errors), counter.count)
        if failure is not None:
            await client.aclose()
            for sentinel in getattr(client, "buttress_sentinels", ()):
                await sentinel.aclose()
            raise failure
        return cls(dsn, client, topology=topology, endpoint=endpoint)

    async def _ping(self) -> None:
        await self.client.ping()

    async def _close(self) -> None:
        if self._pipelined is not None:
            await self._pipelined.aclose()
        if self._blocking is not None:
            self._blocking.close()
        try:
            await self.client.aclose()
            for sentinel in getattr(self.client, "buttress_sentinels", ()):
                await sentinel.aclose()
        except RuntimeError as exc:
            # A sync app opens the backend with asyncio.run() and closes it with
            # another: redis-py's pooled connections belong to the first, closed
            # loop and cannot be closed on it. Their sockets go with the pool.
            if "closed" not in str(exc):
                raise


async def _ask_sentinels(sentinels: Sequence[Any], service: str, errors: Any) -> None:
    """Return as soon as one sentinel names a master for ``service``; otherwise raise
    one redis-py error saying why none did, naming the sentinels: an
    ``AuthenticationError`` when any refused the credentials (not retried), a
    ``ResponseError`` when every one answered as no sentinel does (not retried),
    else a ``ConnectionError`` (unreachable, or no master known yet: retried)."""
    refused: list[str] = []
    unreachable: list[str] = []
    unaware: list[str] = []
    strangers: list[str] = []
    refusal = unreached = ""
    for sentinel in sentinels:
        where = _address_of(sentinel)
        try:
            # SENTINEL MASTERS, as redis-py's own discovery asks: no other permission needed.
            masters = await sentinel.sentinel_masters()
        except errors.AuthenticationError as exc:  # a ConnectionError too: first
            refused.append(where)
            refusal = refusal or _reason(exc, errors)
        except errors.ResponseError as exc:
            reason = _reason(exc, errors)
            what = "is not a sentinel" if "unknown command" in reason else "answered"
            strangers.append(f"{where} {what} ({reason})")
        except (errors.ConnectionError, errors.TimeoutError, OSError, TimeoutError) as exc:
            unreachable.append(where)
            unreached = unreached or _reason(exc, errors)
        else:
            if service in masters:
                return
            unaware.append(where)
    parts = []
    if refused:
        parts.append(f"authentication failed at sentinel {', '.join(refused)} ({refusal})")
    parts.extend(strangers)
    if unaware:
        parts.append(f"sentinel {', '.join(unaware)} named no master for service {service!r}")
    if unreachable:
        parts.append(f"could not reach sentinel {', '.join(unreachable)} ({unreached})")
    text = "; ".join(parts) or "no sentinel to ask"
    if refused:
        raise errors.AuthenticationError(text)
    if strangers and not (unaware or unreachable):
        raise errors.ResponseError(text)
    raise errors.ConnectionError(text)


def _answer(exc: BaseException, errors: Any) -> BaseException:
    """The error to report: a server's own answer (wrong credentials, no cluster
    mode) rather than redis-py's cluster wrapper, which asks for "at least one
    reachable node" whatever went wrong."""
    cause: BaseException | None = exc.__cause__
    answered: tuple[type[BaseException], ...] = (errors.AuthenticationError, errors.ResponseError)
    if isinstance(exc, errors.RedisClusterException) and isinstance(cause, answered):
        return cause
    return exc


def _address_of(client: Any) -> str:
    """``host:port`` of a redis-py client (a sentinel), for messages."""
    settings = client.connection_pool.connection_kwargs
    host = str(settings.get("host", "?"))
    return f"[{host}]:{settings.get('port')}" if ":" in host else f"{host}:{settings.get('port')}"


def _reason(exc: BaseException, errors: Any) -> str:
    """Why a call failed, in a few words: the system's text for a refused or reset
    connection, "timed out", or the driver's message without object reprs."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            break
        if isinstance(seen, TimeoutError | errors.TimeoutError):
            return "timed out"
        if isinstance(seen, OSError) and seen.errno:
            return os.strerror(seen.errno)
        seen = seen.__cause__ or seen.__context__
    return strip_reprs(" ".join(str(exc).split())) or type(exc).__name__


def _bad_certificate(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a TLS certificate the CA does not vouch for."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError) or "certificate verify failed" in str(
            seen
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _endpoint(dsn: DSN, common: dict[str, Any]) -> Endpoint:
    from buttress.backends._resp import Endpoint

    return Endpoint(
        host=dsn.hosts[0][0],
        port=dsn.hosts[0][1],
        db=int(dsn.database or 0),
        username=dsn.user,
        password=dsn.password,
        timeout=common["socket_timeout"],
        connect_timeout=common["socket_connect_timeout"],
    )


def _cluster_client(
    driver: Any, dsn: DSN, common: dict[str, Any], max_connections: int
) -> tuple[Any, Endpoint]:
    from redis.asyncio.cluster import ClusterNode, RedisCluster

    client = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in dsn.hosts],
        username=dsn.user,
        password=dsn.password,
        max_connections=max_connections,
        **common,
    )
    return client, _endpoint(dsn, common)


def _sentinel_client(
    driver: Any, dsn: DSN, common: dict[str, Any], max_connections: int
) -> tuple[Any, Endpoint]:
    from redis.asyncio.sentinel import Sentinel

    # Sentinels ask for the same credentials as the data nodes (one DSN, one password).
    assert dsn.service is not None
    credentials: dict[str, Any] = {"username": dsn.user, "password": dsn.password}
    sentinel = Sentinel(
        list(dsn.hosts),
        sentinel_kwargs={
            **credentials,
            "socket_timeout": common["socket_timeout"],
            "socket_connect_timeout": common["socket_connect_timeout"],
        },
        **credentials,
        **common,
    )
    client = sentinel.master_for(
        dsn.service, db=int(dsn.database or 0), max_connections=max_connections
    )
    # Closing the master's client must close the sentinels' connections too.
    client.buttress_sentinels = sentinel.sentinels
    return client, _endpoint(dsn, common)
