"""Entry point of the processor: ``python -m bytewax.run flows.main``.

Settings are loaded here, once, from ``settings.toml`` and ``LLMOPT_*`` variables (the
orchestrator passes the resolved broker and database addresses this way).
"""

from __future__ import annotations

import gc

from core.settings import load_settings
from flows.pipeline import build_flow
from flows.stop import install_stop_handlers, stop_requested

install_stop_handlers()  # SIGINT/SIGTERM end the input; open windows stay in the snapshot
flow = build_flow(load_settings(), stopping=stop_requested)
# Everything imported so far lives as long as the process: keep the garbage collector from
# walking it again on every full collection (they ran every few batches).
gc.freeze()
