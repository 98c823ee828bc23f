"""The ``llmopt.v1`` servicers: thin adapters over :mod:`api.service`."""

from api.grpc.servicers.admin import AdminServicer
from api.grpc.servicers.config import ConfigServicer
from api.grpc.servicers.integrations import IntegrationServicer
from api.grpc.servicers.metrics import MetricsServicer
from api.grpc.servicers.optimization import OptimizationServicer

__all__ = [
    "AdminServicer",
    "ConfigServicer",
    "IntegrationServicer",
    "MetricsServicer",
    "OptimizationServicer",
]
