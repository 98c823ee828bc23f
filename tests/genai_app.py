"""An application instrumented by a GenAI OpenTelemetry library, run as its own process.

``python -m tests.genai_app LIBRARY PROVIDER_URL COLLECTOR_URL CALLS STREAMS [PRICES]``: the
library (``openlit`` or ``traceloop``) sets up global OpenTelemetry providers exporting over
OTLP/HTTP to the collector, as its documentation says; the app then makes ``CALLS`` chat calls
and ``STREAMS`` streamed ones with the real ``openai`` client against the (fake) provider, and
flushes. Global providers are why this is a process of its own.
"""

from __future__ import annotations

import sys

import openai
from opentelemetry import metrics, trace


def main() -> None:
    library, provider_url, collector, calls, streams = sys.argv[1:6]
    if library == "openlit":
        import openlit

        openlit.init(
            application_name="openlit-app", service_name="openlit-app", otlp_endpoint=collector,
            disable_batch=True, capture_message_content=False, pricing_json=sys.argv[6],
        )  # fmt: skip
    elif library == "traceloop":
        from traceloop.sdk import Traceloop

        Traceloop.init(
            app_name="traceloop-app", api_endpoint=collector, disable_batch=True,
            telemetry_enabled=False,
        )  # fmt: skip
    else:
        raise SystemExit(f"unknown library {library}")
    client = openai.OpenAI(base_url=provider_url, api_key="test", max_retries=0)
    for i in range(int(calls)):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"hello number {i}"}]
        )
    for _ in range(int(streams)):
        stream = client.chat.completions.create(
            model="gpt-4o-mini", stream=True, stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "stream me"}],
        )  # fmt: skip
        for _chunk in stream:
            pass
    for provider in (trace.get_tracer_provider(), metrics.get_meter_provider()):
        flush = getattr(provider, "force_flush", None)
        if callable(flush):
            flush(60_000)
        shutdown = getattr(provider, "shutdown", None)
        if callable(shutdown):
            shutdown()


if __name__ == "__main__":
    main()
