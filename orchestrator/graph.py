"""Start order of services from their dependencies (Kahn's algorithm)."""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence

from core.errors import DependencyCycleError
from orchestrator.errors import UnknownDependencyError

__all__ = ["start_order"]


def start_order(services: Mapping[str, Sequence[str]]) -> list[str]:
    """Order services so that each one comes after every service it depends on.

    Kahn's algorithm; among the services that are ready at the same time, the one registered
    first (earlier in ``services``' iteration order) comes first, so the order is deterministic.

    Args:
        services: Each service's name mapped to the names it depends on, in registration order.

    Returns:
        Every name once, dependencies first.

    Raises:
        UnknownDependencyError: When a service depends on a name that is not in ``services``.
        DependencyCycleError: When the dependencies form a cycle; its ``cycle`` lists the nodes
            of one cycle in dependency order, closing on the first (``["a", "b", "a"]``).
    """
    names = list(services)
    index = {name: i for i, name in enumerate(names)}
    deps: dict[str, list[str]] = {}
    for name in names:
        unique = list(dict.fromkeys(services[name]))
        for dep in unique:
            if dep not in index:
                raise UnknownDependencyError(name, dep)
        deps[name] = unique

    waiting = {name: len(deps[name]) for name in names}
    dependents: dict[str, list[str]] = {name: [] for name in names}
    for name in names:
        for dep in deps[name]:
            dependents[dep].append(name)

    ready = [index[name] for name in names if waiting[name] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = names[heapq.heappop(ready)]
        order.append(name)
        for dependent in dependents[name]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(ready, index[dependent])

    if len(order) < len(names):
        left = [name for name in names if waiting[name] > 0]
        raise DependencyCycleError(_find_cycle(left, deps, index))
    return order


def _find_cycle(
    left: list[str], deps: Mapping[str, list[str]], index: Mapping[str, int]
) -> list[str]:
    """Walk dependency edges among the unordered services until one repeats.

    Every service Kahn's algorithm could not order still waits on another such service, so the
    walk never stops early and must close a cycle. The cycle is rotated to begin at its
    earliest-registered member.
    """
    remaining = set(left)
    path: list[str] = []
    seen: dict[str, int] = {}
    node = left[0]
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = next(dep for dep in deps[node] if dep in remaining)
    cycle = path[seen[node] :]
    first = min(range(len(cycle)), key=lambda i: index[cycle[i]])
    cycle = cycle[first:] + cycle[:first]
    return [*cycle, cycle[0]]
