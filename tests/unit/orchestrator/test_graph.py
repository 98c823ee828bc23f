from __future__ import annotations

import pytest

from core.errors import DependencyCycleError, OptimizerError
from orchestrator import UnknownDependencyError, start_order


def test_design_services_start_in_dependency_order() -> None:
    services = {
        "grpc": ["storage", "processor"],
        "rest": ["storage", "processor"],
        "processor": ["storage", "collector", "integrations"],
        "integrations": ["storage"],
        "collector": ["storage"],
        "storage": [],
    }
    assert start_order(services) == [
        "storage",
        "integrations",
        "collector",
        "processor",
        "grpc",
        "rest",
    ]


def test_ties_are_broken_by_registration_order() -> None:
    services = {"rest": ["storage", "processor"], "storage": [], "processor": ["storage"]}
    services |= {"collector": ["storage"], "zeta": [], "alpha": []}
    # Ready at once: storage, zeta, alpha -> registration order. After storage: processor and
    # collector; after processor: rest, which was registered before collector.
    assert start_order(services) == ["storage", "processor", "rest", "collector", "zeta", "alpha"]


def test_independent_services_keep_registration_order() -> None:
    assert start_order({"c": [], "a": [], "b": []}) == ["c", "a", "b"]


def test_duplicate_dependencies_count_once() -> None:
    assert start_order({"b": ["a", "a"], "a": []}) == ["a", "b"]


def test_cycle_among_several_nodes_is_named_in_order() -> None:
    services = {"x": ["a"], "a": ["b"], "b": ["c"], "c": ["a"], "d": [], "e": ["x"]}
    with pytest.raises(DependencyCycleError) as caught:
        start_order(services)
    assert caught.value.cycle == ["a", "b", "c", "a"]
    assert "a -> b -> c -> a" in str(caught.value)


def test_cycle_starts_at_its_earliest_registered_member() -> None:
    with pytest.raises(DependencyCycleError) as caught:
        start_order({"c": ["a"], "b": ["c"], "a": ["b"]})
    assert caught.value.cycle == ["c", "a", "b", "c"]


def test_cycle_leaves_out_nodes_that_only_depend_on_it() -> None:
    services = {"top": ["p"], "p": ["q"], "q": ["r"], "r": ["q"]}
    with pytest.raises(DependencyCycleError) as caught:
        start_order(services)
    assert caught.value.cycle == ["q", "r", "q"]


def test_self_cycle() -> None:
    with pytest.raises(DependencyCycleError) as caught:
        start_order({"a": [], "b": ["b"]})
    assert caught.value.cycle == ["b", "b"]


def test_unknown_dependency_is_named() -> None:
    with pytest.raises(UnknownDependencyError) as caught:
        start_order({"a": [], "b": ["a", "ghost"]})
    assert caught.value.service == "b"
    assert caught.value.dependency == "ghost"
    assert "'ghost'" in str(caught.value)
    assert isinstance(caught.value, OptimizerError)


def test_empty_graph() -> None:
    assert start_order({}) == []
