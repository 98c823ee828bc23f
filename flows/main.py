"""Entry point of the processor: ``python -m bytewax.run flows.main``.

Settings are loaded here, once, from ``settings.toml`` and ``LLMOPT_*`` variables (the
orchestrator passes the resolved broker and database addresses this way).
"""

from __future__ import annotations

from core.settings import load_settings
from flows.pipeline import build_flow

flow = build_flow(load_settings())
