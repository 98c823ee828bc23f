"""The collector: the Kafka producer every ingest path uses (OTLP receivers come next)."""

from collector.producer import ProduceReport, TelemetryProducer, app_key

__all__ = ["ProduceReport", "TelemetryProducer", "app_key"]
