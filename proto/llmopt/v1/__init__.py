"""Package ``llmopt.v1``: the ``.proto`` sources and the Python code generated from them.

Regenerate with ``make proto`` (``python -m proto.generate``); import the generated modules as
``from proto.llmopt.v1 import metrics_pb2, metrics_pb2_grpc``.
"""

__all__: list[str] = []
