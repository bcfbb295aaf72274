"""End-to-end tests: OpenTelemetry SDK -> rotel-agent -> Arize Phoenix, read back over REST."""
