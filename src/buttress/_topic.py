"""``Topic``: one named stream of in-process events, and nothing else.

A publisher tests ``topic.listeners`` (or, on the hottest paths, a module
global kept in step by ``topic.watch``) before it builds the event, so with
nobody listening a publish site costs next to nothing. Listeners run
synchronously in the publisher's thread; one that raises is logged once and
never reaches the publisher. Each component declares its own topics; this
module knows none of them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from buttress._exceptions import ValidationError
from buttress.log import get_logger

__all__ = ["Listener", "Topic"]

E = TypeVar("E")
Listener = Callable[[E], object]
"""What a topic calls with each event; its return value is ignored."""

_log = get_logger("events")


class Topic(Generic[E]):
    """A named stream of events of one type.

    >>> seen: list[str] = []
    >>> topic: Topic[str] = Topic("example")
    >>> _ = topic.subscribe(seen.append)
    >>> if topic.listeners:
    ...     topic.publish("hello")
    >>> seen
    ['hello']
    """

    __slots__ = ("_failed", "_lock", "_watchers", "listeners", "name")

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValidationError("name", "must be a non-empty string")
        self.name = name
        # Replaced whole on every change: publishers read it without a lock.
        self.listeners: tuple[Listener[E], ...] = ()
        self._failed: set[int] = set()
        self._watchers: tuple[Callable[[bool], object], ...] = ()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Topic({self.name!r}, listeners={len(self.listeners)})"

    def subscribe(self, listener: Listener[E]) -> Listener[E]:
        """Call ``listener(event)`` for every event from now on; usable as a decorator.

        Subscribing the same object twice delivers each event to it twice.
        """
        if not callable(listener):
            raise ValidationError("listener", "must be callable")
        with self._lock:
            self.listeners = (*self.listeners, listener)
            if len(self.listeners) == 1:
                self._tell_watchers(True)
        return listener

    def unsubscribe(self, listener: Listener[E]) -> None:
        """Stop calling ``listener`` (its latest subscription); unknown is a no-op."""
        with self._lock:
            current = self.listeners
            for index in range(len(current) - 1, -1, -1):
                # Equality, not identity: ``obj.method`` is a new object at each access.
                if current[index] == listener:
                    self.listeners = current[:index] + current[index + 1 :]
                    if not any(other is current[index] for other in self.listeners):
                        self._failed.discard(id(current[index]))
                    if not self.listeners:
                        self._tell_watchers(False)
                    return

    def watch(self, callback: Callable[[bool], object]) -> None:
        """Call ``callback(active)`` now and whenever the topic gains its first
        listener (True) or loses its last (False).

        For publishers on paths where even an attribute read shows: they keep
        a module global in step and test that instead. ``callback`` runs under
        the topic's lock, so it must only record the flag.
        """
        if not callable(callback):
            raise ValidationError("callback", "must be callable")
        with self._lock:
            self._watchers = (*self._watchers, callback)
            callback(bool(self.listeners))

    @contextmanager
    def subscribed(self, listener: Listener[E]) -> Iterator[Listener[E]]:
        """``subscribe`` for the duration of a ``with`` block (handy in tests)."""
        self.subscribe(listener)
        try:
            yield listener
        finally:
            self.unsubscribe(listener)

    def publish(self, event: E) -> None:
        """Deliver ``event`` to every listener; never raises because of a listener."""
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:  # noqa: BLE001  (a listener must never break the publisher)
                self._report(listener)

    def _tell_watchers(self, active: bool) -> None:
        for watcher in self._watchers:
            try:
                watcher(active)
            except Exception:  # noqa: BLE001  (a watcher must not stop a subscription)
                _log.exception("events.watcher_failed", topic=self.name, watcher=repr(watcher))

    def _report(self, listener: Listener[E]) -> None:
        # Once per subscribed listener: a broken metrics sink on a hot path would
        # otherwise flood the log with one traceback per call.
        key = id(listener)
        with self._lock:
            if key in self._failed:
                return
            self._failed.add(key)
        _log.exception("events.listener_failed", topic=self.name, listener=repr(listener))
