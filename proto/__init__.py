"""Protocol buffers of ``llmopt.v1`` and their generated code (``make proto``)."""

__all__: list[str] = []
