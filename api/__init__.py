"""REST (``api.rest``) and gRPC (``api.grpc``) over one service layer (``api.service``)."""

__all__: list[str] = []
