"""The security state as the recorder reads it: a provider's ``SecuritySnapshot``, redacted like
any user data, and COMPROMISED (fail-closed) when the provider fails or returns something else."""

from __future__ import annotations

from datetime import timezone
from typing import Callable

from otel_execaudit.recording.records import SecuritySnapshot, SecurityState
from otel_execaudit.redaction import Redactor

__all__ = ["SecurityProvider", "read_security"]

SecurityProvider = Callable[[], SecuritySnapshot]


def read_security(provider: SecurityProvider | None, redactor: Redactor) -> SecuritySnapshot:
    """The current snapshot: NORMAL without a provider, COMPROMISED when it cannot be read."""
    if provider is None:
        return SecuritySnapshot()
    try:
        snapshot = provider()
        if not isinstance(snapshot, SecuritySnapshot):
            return SecuritySnapshot(SecurityState.COMPROMISED, details={
                "error": f"security provider returned {type(snapshot).__name__}"})
        # The provider's details are user data like any other: redacted and bounded.
        return SecuritySnapshot(SecurityState(snapshot.state),
                                snapshot.taken_at.astimezone(timezone.utc),
                                redactor.clean(dict(snapshot.details)))
    except Exception as error:  # fail closed: an unreadable state is not a normal one
        return SecuritySnapshot(SecurityState.COMPROMISED, details={
            "error": f"security provider failed: {type(error).__name__}"})
