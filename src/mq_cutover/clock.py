"""The one place handlers read the time or wait. The offline harness replaces `utcnow` and
`sleep` with its simulated clock (so a two-hour drain runs in seconds); nothing else does."""

import time
from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def sleep(seconds: float) -> None:
    time.sleep(seconds)
