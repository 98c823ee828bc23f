"""The concrete services the orchestrator supervises, in start order."""

from orchestrator.services.collector import CollectorService
from orchestrator.services.grpc import GrpcService
from orchestrator.services.integrations import IntegrationsService
from orchestrator.services.processor import ProcessorService
from orchestrator.services.rest import RestService
from orchestrator.services.storage import StorageService

__all__ = [
    "CollectorService",
    "GrpcService",
    "IntegrationsService",
    "ProcessorService",
    "RestService",
    "StorageService",
]
