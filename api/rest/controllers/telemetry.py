"""``/api/v1/telemetry``: batch ingest of telemetry events."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post
from litestar.status_codes import HTTP_202_ACCEPTED

from api.rest.auth import principal_of
from api.rest.resources import resources_of
from api.service import TelemetryAccepted

__all__ = ["TelemetryController"]


class TelemetryController(Controller):
    """Telemetry from applications that neither use Kafka nor OTLP."""

    path = "/api/v1/telemetry"
    tags = ["telemetry"]

    @post(
        "/",
        status_code=HTTP_202_ACCEPTED,
        summary="Ingest a JSON array or NDJSON batch of events (at most api.max_batch_events)",
        description="Each event is validated on its own: valid ones go to Kafka, invalid ones "
        "to the DLQ and are listed with their index and reason. 429 with Retry-After under "
        "backpressure: nothing of the batch was accepted, resend all of it.",
        opt={"permission": "telemetry.write"},
    )
    async def ingest(self, request: Request[Any, Any, Any]) -> TelemetryAccepted:
        """Validate and deliver a batch (body: JSON array, or NDJSON)."""
        return await resources_of(request.app).telemetry.ingest(
            await request.body(),
            request.headers.get("content-type", ""),
            identity=principal_of(request).subject,
        )
