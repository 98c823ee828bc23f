"""Protos of the LLM Auto Optimizer, by proto package (``llmopt.v1``)."""

__all__: list[str] = []
