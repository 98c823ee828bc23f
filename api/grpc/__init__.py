"""The gRPC API (``grpc.aio``): package ``llmopt.v1`` over the same service layer as REST.

:func:`create_server` builds a bound server from the settings and the opened resources
(:func:`open_resources`); servicers are thin adapters over :mod:`api.service`; auth, request ids
and logging, Prometheus metrics and the error mapping are interceptors.
"""

from api.grpc.errors import FieldError, decode_details, status_of, translate
from api.grpc.resources import open_resources
from api.grpc.server import SERVICE_NAMES, GrpcServer, create_server, server_credentials

__all__ = [
    "SERVICE_NAMES",
    "FieldError",
    "GrpcServer",
    "create_server",
    "decode_details",
    "open_resources",
    "server_credentials",
    "status_of",
    "translate",
]
