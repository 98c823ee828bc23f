"""The analyzer and strategy tables are the one list of each: names, builds and statistics agree."""

from __future__ import annotations

from typing import get_args

from core.decisions import STRATEGIES
from core.insights import AnalyzerName
from core.settings import Settings
from operators.analyzers import ANALYZERS, KIND_STATISTIC, build_analyzers
from operators.judge import GUARDED
from operators.strategies import STRATEGY_ENTRIES, build_strategies


def test_every_analyzer_name_has_one_entry_and_builds_that_analyzer() -> None:
    assert [e.name for e in ANALYZERS] == list(get_args(AnalyzerName))
    assert [a.name for a in build_analyzers(Settings())] == [e.name for e in ANALYZERS]


def test_each_insight_kind_belongs_to_one_analyzer() -> None:
    kinds = [kind for entry in ANALYZERS for kind in entry.statistics]
    assert len(kinds) == len(set(kinds)) == len(KIND_STATISTIC)
    assert all(KIND_STATISTIC[k] for k in kinds)


def test_every_proposing_strategy_has_one_entry_a_build_and_guarded_metrics() -> None:
    names = [e.name for e in STRATEGY_ENTRIES]
    assert names == [s for s in STRATEGIES if s != "rollback"]
    assert [s.name for s in build_strategies(Settings())] == names
    assert set(GUARDED) == set(names)
