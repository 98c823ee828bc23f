"""Bytewax dataflows: ``flows.main`` is the processor (``python -m bytewax.run flows.main``)."""

from flows.pipeline import FlowIO, build_flow

__all__ = ["FlowIO", "build_flow"]
