"""Rate-limit middleware overhead on a real server: a FastAPI app under uvicorn,
driven by wrk, with no limiter, an empty pass-through middleware (alone, and
adding five fixed header fields), buttress (memory, Redis, and Redis with a
leased quota) and slowapi (memory and Redis), in one run; prints throughput
and p99 latency and their ratios to the app without a limiter.

    python benchmarks/middleware.py [--quick] [--duration 10] [--rounds 5]
                                    [--redis DSN] [--no-headers]

Each case is its own uvicorn process (127.0.0.1, one worker, access log off),
all started up front; wrk (``-t1 -c32 --latency`` by default) then visits them
in interleaved rounds (A B C ..., A B C ..., ...), so a change in machine load
hits every case alike. Ratios are taken within a round and the median over
rounds is printed. The limit is generous (10^9 per minute), so nothing is
refused: what is measured is the cost of deciding on every request. Without
``--redis`` a throwaway redis-server is started with the test suite's helper
(tests/servers.py). wrk is Debian's ``wrk`` package.

buttress answers with its rate-limit headers (its default; ``--no-headers``
turns them off); slowapi runs with its defaults (``headers_enabled=False``)
through its pure ASGI middleware.

Internal: ``--serve CASE --port N [--redis DSN]`` runs one case's server.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, NamedTuple

CASES = (
    "none",
    "pass-through",
    "pass-through + headers",
    "buttress memory",
    "buttress redis",
    "buttress redis lease",
    "slowapi memory",
    "slowapi redis",
)
# The leased case: wrk's one address is one hot key; each round trip takes this many
# units, held for at most LEASE_SECONDS.
LEASE_UNITS, LEASE_SECONDS = 1_000, 1.0
LIMIT = 1_000_000_000  # per minute: never reached, every request is admitted
ROOT = Path(__file__).resolve().parent.parent


def build_app(case: str, redis_dsn: str | None, headers: bool) -> Any:
    from contextlib import asynccontextmanager

    from fastapi import FastAPI

    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if case.startswith("buttress redis"):
            from buttress import connect

            assert redis_dsn is not None
            state["backend"] = await connect(redis_dsn)
        yield
        if "backend" in state:
            await state["backend"].close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/")
    async def index() -> dict[str, bool]:
        return {"ok": True}

    if case.startswith("pass-through"):
        # One more pure ASGI middleware that decides nothing: the floor any
        # rate-limit middleware stands on; "+ headers" adds five fixed header
        # fields of the sizes buttress sends, to price the fields alone.
        extra = (
            [
                (b"ratelimit-policy", b'"default";q=1000000000;w=60'),
                (b"ratelimit", b'"default";r=999999999;t=0'),
                (b"x-ratelimit-limit", b"1000000000"),
                (b"x-ratelimit-remaining", b"999999999"),
                (b"x-ratelimit-reset", b"0"),
            ]
            if case.endswith("headers")
            else []
        )

        class PassThrough:
            def __init__(self, app: Any) -> None:
                self.app = app

            async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
                if not extra or scope["type"] != "http":
                    await self.app(scope, receive, send)
                    return

                async def send_with_fields(message: Any) -> None:
                    if message["type"] == "http.response.start":
                        message["headers"] = [*message.get("headers", ()), *extra]
                    await send(message)

                await self.app(scope, receive, send_with_fields)

        app.add_middleware(PassThrough)
    elif case.startswith("buttress"):
        from buttress.adapters.asgi_ratelimit import ASGIRateLimitMiddleware
        from buttress.log import configure_logging
        from buttress.ratelimit import Lease, Rate, RateLimiter

        configure_logging(level="WARNING")
        rate = Rate(LIMIT, 60)
        limiter: Any
        if case == "buttress memory":
            limiter = RateLimiter(rate)
        else:
            leased = case.endswith("lease")
            lease = Lease(LEASE_UNITS, LEASE_SECONDS) if leased else None
            prefix = "bench-lease" if leased else "bench"

            def limiter() -> RateLimiter:
                return RateLimiter(rate, backend=state["backend"], prefix=prefix, lease=lease)

        app.add_middleware(ASGIRateLimitMiddleware, limiter=limiter, headers=headers)
    elif case.startswith("slowapi"):
        from slowapi import Limiter
        from slowapi.middleware import SlowAPIASGIMiddleware
        from slowapi.util import get_remote_address

        uri = "memory://" if case == "slowapi memory" else redis_dsn
        app.state.limiter = Limiter(
            key_func=get_remote_address, default_limits=[f"{LIMIT}/minute"], storage_uri=uri
        )
        app.add_middleware(SlowAPIASGIMiddleware)
    return app


def serve(case: str, port: int, redis_dsn: str | None, headers: bool, http: str, loop: str) -> None:
    import uvicorn

    app = build_app(case, redis_dsn, headers)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        http=http,  # type: ignore[arg-type]
        loop=loop,  # type: ignore[arg-type]
        log_level="warning",
        access_log=False,
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        url = f"http://127.0.0.1:{port}/"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not answer in {timeout:.0f}s")


_UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6}


def parse_wrk(out: str) -> tuple[float, float, int, int]:
    """Requests/s, p99 latency in microseconds, requests and non-2xx responses."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
    count = re.search(r"(\d+) requests in", out)
    if rps is None or p99 is None or count is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return float(rps[1]), float(p99[1]) * _UNITS[p99[2]], int(count[1]), int(bad[1]) if bad else 0


class Sample(NamedTuple):
    rps: float
    p99_us: float
    cpu_us: float  # the server process's CPU time per request


def run_wrk(args: argparse.Namespace, port: int, pid: int, duration: float) -> Sample:
    cmd = [
        args.wrk,
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{duration:g}s",
        "--latency",
        f"http://127.0.0.1:{port}/",
    ]
    cpu = cpu_seconds(pid)
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=duration + 60)
    cpu = cpu_seconds(pid) - cpu
    rps, p99, count, bad = parse_wrk(done.stdout)
    if bad:
        raise RuntimeError(f"port {port}: {bad} responses were not 2xx")
    return Sample(rps, p99, cpu * 1e6 / max(count, 1))


@contextlib.contextmanager
def redis_dsn(given: str | None) -> Iterator[str | None]:
    """The DSN given, else a throwaway redis-server (tests/servers.py), else None."""
    if given:
        yield given
        return
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        servers: Any = importlib.import_module("servers")
        srv = servers.RedisServer()
        srv.start()
    except Exception as exc:
        print(f"redis: no server ({type(exc).__name__}: {exc}); Redis cases skipped")
        yield None
        return
    try:
        yield srv.dsn(0)
    finally:
        srv.stop()


@contextlib.contextmanager
def servers(
    cases: list[str], dsn: str | None, headers: bool, http: str, loop: str
) -> Iterator[dict[str, tuple[int, int]]]:
    """One server process per case, ready; yields each case's port and pid."""
    started: dict[str, tuple[int, subprocess.Popen[bytes]]] = {}
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    try:
        for case in cases:
            port = free_port()
            cmd = [sys.executable, __file__, "--serve", case, "--port", str(port)]
            cmd += ["--http", http, "--loop", loop]
            if dsn:
                cmd += ["--redis", dsn]
            if not headers:
                cmd.append("--no-headers")
            started[case] = (port, subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL))
        for port, proc in started.values():
            wait_ready(port, proc)
        yield {case: (port, proc.pid) for case, (port, proc) in started.items()}
    finally:
        for _port, proc in started.values():
            proc.terminate()
        for _port, proc in started.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def describe_server(http: str, loop: str) -> str:
    import uvicorn

    def present(module: str) -> bool:
        try:
            importlib.import_module(module)
        except ImportError:
            return False
        return True

    if http == "auto":
        http = "httptools" if present("httptools") else "h11"
    if loop == "auto":
        loop = "uvloop" if present("uvloop") else "asyncio"
    return f"uvicorn {uvicorn.__version__} ({http}, {loop})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of wrk per case first")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="2 rounds of 3 s: a smoke run")
    parser.add_argument("--redis", help="Redis DSN (default: start a throwaway redis-server)")
    parser.add_argument("--no-headers", action="store_true", help="buttress without headers")
    parser.add_argument("--only", action="append", choices=CASES, help="run only these cases")
    parser.add_argument("--wrk", default=shutil.which("wrk") or "/usr/bin/wrk")
    parser.add_argument("--http", default="auto", choices=("auto", "h11", "httptools"))
    parser.add_argument("--loop", default="auto", choices=("auto", "asyncio", "uvloop"))
    parser.add_argument("--serve", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    headers = not args.no_headers

    if args.serve:
        serve(args.serve, args.port, args.redis, headers, args.http, args.loop)
        return 0
    if args.quick:
        args.duration, args.rounds, args.warmup = 3.0, 2, 1.0
    if not os.path.exists(args.wrk):
        print(f"wrk not found ({args.wrk}): install Debian's wrk package")
        return 2

    wanted = list(args.only or CASES)
    if "none" not in wanted:
        wanted.insert(0, "none")
    with redis_dsn(args.redis) as dsn:
        cases = [c for c in wanted if dsn or "redis" not in c]
        print(
            f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s, "
            f"{args.rounds} rounds; {describe_server(args.http, args.loop)}; buttress headers "
            f"{'on' if headers else 'off'}; load average {os.getloadavg()[0]:.2f}"
        )
        with servers(cases, dsn, headers, args.http, args.loop) as ports:
            for case in cases:
                run_wrk(args, *ports[case], args.warmup)
            samples: dict[str, list[Sample]] = {c: [] for c in cases}
            for n in range(args.rounds):
                for case in cases:
                    samples[case].append(run_wrk(args, *ports[case], args.duration))
                print(
                    f"  round {n + 1}: "
                    + ", ".join(f"{c} {samples[c][n].rps:,.0f}/s" for c in cases)
                    + f" (load {os.getloadavg()[0]:.2f})",
                    flush=True,
                )
    base = samples["none"]

    def ratio(case: str, field: str) -> float:
        return statistics.median(
            getattr(s, field) / getattr(b, field) for s, b in zip(samples[case], base, strict=True)
        )

    def median(case: str, field: str) -> float:
        return statistics.median(getattr(s, field) for s in samples[case])

    print(
        f"\n{'case':<24} {'req/s':>8} {'p99 ms':>7} {'CPU us/req':>10} "
        f"{'x req/s':>8} {'x p99':>6} {'x CPU':>6}"
    )
    for case in cases:
        print(
            f"{case:<24} {median(case, 'rps'):8,.0f} {median(case, 'p99_us') / 1000:7.2f} "
            f"{median(case, 'cpu_us'):10.1f} {ratio(case, 'rps'):8.2f} "
            f"{ratio(case, 'p99_us'):6.2f} {ratio(case, 'cpu_us'):6.2f}"
        )
    print(
        "medians over rounds; x = ratio to 'none' within each round (x CPU: the server "
        f"process's CPU time per request); load average at the end {os.getloadavg()[0]:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
