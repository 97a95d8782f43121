"""Production-shaped server topologies for the test session, next to ``servers``'
single PostgreSQL and Redis: a Redis Cluster, Redis under Sentinel, TLS Redis
with an ACL user, TLS PostgreSQL with SCRAM, and PgBouncer in transaction mode.

Everything listens on 127.0.0.1 only, generates its passwords and certificates,
lives in a scratch directory and is stopped and deleted by ``stop()``; a start
that cannot succeed raises ``servers.ServerUnavailable`` saying what to install.
"""

from topology._support import free_ports, sweep_orphans
from topology.pgbouncer import PGBOUNCER_HINT, PgBouncer
from topology.pki import OPENSSL_HINT, CertificateAuthority, KeyPair
from topology.postgres_tls import PostgresTLS
from topology.redis_cluster import ClusterNode, RedisCluster
from topology.redis_process import REDIS_HINT, RedisProcess
from topology.redis_sentinel import RedisSentinel
from topology.redis_tls import RedisTLS

__all__ = [
    "OPENSSL_HINT",
    "PGBOUNCER_HINT",
    "REDIS_HINT",
    "CertificateAuthority",
    "ClusterNode",
    "KeyPair",
    "PgBouncer",
    "PostgresTLS",
    "RedisCluster",
    "RedisProcess",
    "RedisSentinel",
    "RedisTLS",
    "free_ports",
    "sweep_orphans",
]
