"""Entry point of the processor: ``python -m bytewax.run flows.main``.

Settings are loaded here, once, from ``settings.toml`` and ``LLMOPT_*`` variables (the
orchestrator passes the resolved broker and database addresses this way). Each process creates
its topics and migrates the schema before it reads (:mod:`flows.prepare`): it needs nothing
done for it first.
"""

from __future__ import annotations

import gc
from pathlib import Path

from core.crash_report import install_crash_report
from core.settings import load_settings
from flows.pipeline import build_flow
from flows.prepare import prepare
from flows.stop import install_stop_handlers, stop_requested

install_stop_handlers()  # SIGINT/SIGTERM end the input; open windows stay in the snapshot
_settings = load_settings()
# A crash leaves the error and the offsets read last for the orchestrator (crash-loop reports).
install_crash_report(Path(_settings.storage.data_dir))
# Run by hand or by the orchestrator alike: topics and schema are made (or awaited) here.
prepare(_settings)
flow = build_flow(_settings, stopping=stop_requested)
# Everything imported so far lives as long as the process: keep the garbage collector from
# walking it again on every full collection (they ran every few batches).
gc.freeze()
