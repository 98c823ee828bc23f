"""SIGHUP reaches the collector: its rate limits change in the running pipeline."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from collector.pipeline import Source
from collector.server import Collector
from core.errors import OverloadedError
from core.settings import Settings
from orchestrator.services.collector import CollectorService


def test_collector_service_reload_swaps_the_rate_limits_without_a_restart(tmp_path: Path) -> None:
    base = Settings()
    data = dataclasses.replace(Settings().storage, data_dir=str(tmp_path))
    settings = base.with_overrides(
        storage=data,
        kafka=dataclasses.replace(base.kafka, bootstrap_servers="127.0.0.1:9"),
        collector=dataclasses.replace(
            base.collector, source_rate=0.001, source_burst=1, global_rate=0.0
        ),
    )
    service = CollectorService(settings)
    collector = Collector(settings)
    service._collector = collector  # as after start(), without binding the OTLP ports
    ingest = collector.ingest

    def admit() -> None:
        asyncio.run(ingest._admit(Source("otlp_http", "service:a"), 1))

    admit()
    with pytest.raises(OverloadedError):
        admit()
    relaxed = settings.with_overrides(
        collector=dataclasses.replace(settings.collector, source_rate=0.0)
    )
    asyncio.run(service.reload(relaxed))
    assert service.ingest is ingest  # the same pipeline: nothing was restarted
    for _ in range(3):
        admit()
    assert service._settings is relaxed
    asyncio.run(CollectorService(settings).reload(relaxed))  # not started: only kept
