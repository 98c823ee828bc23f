"""The service layer a running gRPC server uses, swapped whole when settings are reloaded."""

from __future__ import annotations

from api.service.layer import ServiceLayer
from core.settings import Settings

__all__ = ["LiveLayer", "OnLiveLayer"]


class LiveLayer:
    """Holds the current :class:`~api.service.layer.ServiceLayer`; servicers read it per call.

    A reload builds the services again from the new settings on the same open handles
    (:meth:`ServiceLayer.reconfigured`) and swaps the reference: calls already running finish on
    the layer they started with, the next call sees the new one; no connection is dropped.
    """

    def __init__(self, layer: ServiceLayer) -> None:
        self.current = layer

    def reload(self, settings: Settings) -> None:
        """Rebuild the services from ``settings`` and make them current."""
        self.current = self.current.reconfigured(settings)


class OnLiveLayer:
    """Base of the servicers: ``self._r`` is the layer current at the time of the call."""

    def __init__(self, resources: LiveLayer) -> None:
        self._live = resources

    @property
    def _r(self) -> ServiceLayer:
        return self._live.current
