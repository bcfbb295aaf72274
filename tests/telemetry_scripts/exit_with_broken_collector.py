"""Build telemetry against a broken collector, record a few spans, and exit.

Usage: python exit_with_broken_collector.py PROTOCOL ENDPOINT DEADLINE [private|application]

"application" hands build_telemetry the application's own global SDK provider, built with the
SDK's defaults (including its own unbounded exit hook). The test that runs this asserts the
interpreter exits 0, quietly, within the deadline.
"""

import sys

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from otel_execaudit.telemetry.build import build_telemetry

protocol, endpoint, deadline = sys.argv[1], sys.argv[2], float(sys.argv[3])
provider_kind = sys.argv[4] if len(sys.argv) > 4 else "private"
options = {"service_name": "exit-test", "protocol": protocol, "endpoint": endpoint, "deadline": deadline}
if provider_kind == "application":
    trace.set_tracer_provider(TracerProvider())
    options.update(tracer_provider=trace.get_tracer_provider(), exporter="otlp")
telemetry = build_telemetry(**options)
with telemetry.tracer.start_as_current_span("invoke_workflow exit-test"):
    for index in range(20):
        with telemetry.tracer.start_as_current_span(f"execute_tool step-{index}"):
            pass
print("work done", flush=True)
