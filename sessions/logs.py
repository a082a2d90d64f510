"""Structured log lines: one JSON object per event, so that an operator can query and alert.

Never log a key or a whole body: the callers pass counts, ids and reasons only.
"""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger("sessions")


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log `{"event": event, ...fields}` as one line of JSON."""
    if log.isEnabledFor(level):
        log.log(level, json.dumps({"event": event, **fields}, default=str, ensure_ascii=False))
