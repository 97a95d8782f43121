"""What a multi-process Redis topology shares: its scratch directory, its
processes, starting with retries (a free port can be taken before a node binds
it) and stopping everything it started."""

from __future__ import annotations

import secrets
import shutil
from typing import ClassVar

from servers import ServerUnavailable, _scratch_dir
from topology._support import PREFIX, sweep_orphans
from topology.redis_process import RedisProcess, import_redis, redis_binary

__all__ = ["RedisTopology"]


class RedisTopology:
    """Subclasses set ``kind`` and implement ``_start_once()``, appending to
    ``processes``; ``_prepare()`` runs once before the attempts."""

    kind: ClassVar[str]

    def __init__(self) -> None:
        self.password = "rpw-" + secrets.token_urlsafe(18)
        self.root = _scratch_dir(f"{PREFIX}{self.kind}-")
        self.processes: list[RedisProcess] = []

    def start(self) -> None:
        sweep_orphans()
        redis_binary()  # a missing binary is not worth retrying
        redis = import_redis()
        self._prepare()
        last_error: Exception | None = None
        for _attempt in range(3):
            try:
                self._start_once()
            except (ServerUnavailable, TimeoutError, OSError, redis.RedisError) as exc:
                last_error = exc
                self._stop_processes()
                continue
            return
        assert last_error is not None
        raise ServerUnavailable(f"{self.kind}: {last_error}") from last_error

    def _prepare(self) -> None:
        """Once before the first attempt: files every attempt needs (certificates...)."""

    def _start_once(self) -> None:
        raise NotImplementedError

    def _stop_processes(self) -> None:
        for process in self.processes:
            process.stop()
        self.processes.clear()

    def stop(self) -> None:
        self._stop_processes()
        shutil.rmtree(self.root, ignore_errors=True)
