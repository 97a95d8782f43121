"""Ordering migrations: dependencies first, then version; every problem collected.

Pure: takes parsed migrations, returns the apply order plus all errors found
(duplicate versions, dependencies on files that do not exist, cycles), so one
run of ``validate()`` tells the operator everything, not the first thing.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import attrs

from buttress.migrations.files import Migration

__all__ = ["Resolution", "resolve"]


@attrs.frozen
class Resolution:
    order: tuple[Migration, ...]
    errors: tuple[str, ...]
    edges: dict[str, tuple[str, ...]] = attrs.field(factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def _lookup(
    ref: str, by_id: dict[str, Migration], by_version: dict[int, list[Migration]]
) -> Migration | None:
    if ref in by_id:
        return by_id[ref]
    version = ref.split("_", 1)[0]
    candidates = by_version.get(int(version), [])
    if "_" not in ref and len(candidates) == 1:
        return candidates[0]
    return None


def resolve(migrations: Sequence[Migration]) -> Resolution:
    """Apply order (Kahn's algorithm, lowest version first among the ready)."""
    errors: list[str] = []
    by_id = {m.id: m for m in migrations}
    by_version: dict[int, list[Migration]] = {}
    for migration in migrations:
        by_version.setdefault(migration.version, []).append(migration)
    for version, group in sorted(by_version.items()):
        if len(group) > 1:
            names = ", ".join(m.filename for m in group)
            errors.append(f"version {version:04d} is used by several files: {names}")
    edges: dict[str, tuple[str, ...]] = {}
    for migration in migrations:
        found: list[str] = []
        for ref in migration.depends:
            target = _lookup(ref, by_id, by_version)
            if target is None:
                errors.append(f"{migration.filename}: depends on {ref}, which does not exist")
            elif target.id == migration.id:
                errors.append(f"{migration.filename}: depends on itself")
            else:
                found.append(target.id)
        edges[migration.id] = tuple(dict.fromkeys(found))
    waiting = {m.id: sum(1 for d in edges[m.id] if d != m.id) for m in migrations}
    dependants: dict[str, list[str]] = {m.id: [] for m in migrations}
    for node, deps in edges.items():
        for dep in deps:
            dependants[dep].append(node)
    ready = [(by_id[n].version, n) for n, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[Migration] = []
    while ready:
        _, node = heapq.heappop(ready)
        order.append(by_id[node])
        for child in dependants[node]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, (by_id[child].version, child))
    stuck = {n for n, count in waiting.items() if count > 0}
    for cycle in _cycles(stuck, edges):
        errors.append("dependency cycle: " + " -> ".join([*cycle, cycle[0]]))
    return Resolution(order=tuple(order), errors=tuple(errors), edges=edges)


def _cycles(stuck: set[str], edges: dict[str, tuple[str, ...]]) -> list[list[str]]:
    """One representative path per cycle among the nodes Kahn could not order."""
    found: list[list[str]] = []
    reported: set[str] = set()
    for start in sorted(stuck):
        if start in reported:
            continue
        path: list[str] = []
        seen: dict[str, int] = {}
        node: str | None = start
        while node is not None and node not in seen:
            seen[node] = len(path)
            path.append(node)
            node = next((d for d in edges[node] if d in stuck), None)
        if node is None:
            continue
        cycle = path[seen[node] :]
        if not reported.intersection(cycle):
            found.append(cycle)
        reported.update(path)
    return found
