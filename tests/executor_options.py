"""What the executor tests share: the options of a LIVE run that every default guard allows,
and a caller's trace id for single-action requests."""

LIVE = {"mode": "LIVE", "validated": True, "validation_passed": True, "acknowledge_risk": True}
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
