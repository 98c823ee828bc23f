"""The gRPC services (grpc.aio) come with the gRPC issue; ``proto/`` holds their contract."""

__all__: list[str] = []
