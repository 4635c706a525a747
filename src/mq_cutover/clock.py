"""The one place handlers read the time. The offline harness replaces `utcnow` with its
simulated clock (so a two-hour drain runs in seconds); nothing else does."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
