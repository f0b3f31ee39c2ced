"""structlog set up once for everything outside the pass-through fast path.

Human-readable `cratecage: <event> key=value ...` lines on stderr by default; JSON lines with
`CRATECAGE_LOG=json`. Import this module only off the fast path: structlog costs ~20 ms to import.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import structlog

LOG_ENV = "CRATECAGE_LOG"
_configured = False


def _human(_logger: Any, _method: str, event: dict[str, Any]) -> str:
    message = event.pop("event", "")
    event.pop("level", None)
    event.pop("timestamp", None)
    extras = " ".join(f"{k}={v}" for k, v in event.items())
    return f"cratecage: {message}" + (f" ({extras})" if extras else "")


def configure(environ: dict[str, str] | os._Environ[str] = os.environ) -> None:
    global _configured
    json_lines = environ.get(LOG_ENV, "").lower() == "json"
    processors: list[Any] = [structlog.processors.add_log_level]
    if json_lines:
        processors += [structlog.processors.TimeStamper(fmt="iso", utc=True),
                       structlog.processors.JSONRenderer()]
    else:
        processors.append(_human)
    structlog.configure(
        processors=processors,
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    _configured = True


def get_logger(component: str) -> Any:
    if not _configured:
        configure()
    return structlog.get_logger().bind(component=component) if os.environ.get(LOG_ENV) == "json" \
        else structlog.get_logger()
