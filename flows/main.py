"""Entry point of the processor: ``python -m bytewax.run flows.main``.

Settings are loaded here, once, from ``settings.toml`` and ``LLMOPT_*`` variables (the
orchestrator passes the resolved broker and database addresses this way).
"""

from __future__ import annotations

import gc

from core.settings import load_settings
from flows.pipeline import build_flow

flow = build_flow(load_settings())
# Everything imported so far lives as long as the process: keep the garbage collector from
# walking it again on every full collection (they ran every few batches).
gc.freeze()
