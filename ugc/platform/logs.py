"""Log lines: plain text for a terminal, or one JSON object per line (`UGC_LOG_FORMAT=json`).

The API's RequestId middleware sets `request_id` for the duration of each request, and
`Services.run` carries it into the blocking threads, so every line a request causes names it.
"""

from __future__ import annotations

import json
import logging
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RequestIdFilter(logging.Filter):
    """Stamp each record with the id of the request being served (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class HideTokens(logging.Filter):
    """Keep `?token=<secret>` out of the logs: uvicorn logs a socket's URL (an access token) and, with
    the access log on, every request's (a verification link's token).

    A parameter is hidden by its name as the server reads it, percent-decoded: `?%74oken=` is the
    socket's `token` to Starlette, and was written out in full when only the literal `token=` was hidden.
    """

    _PARAMETER = re.compile(r"([^\s?&;=\"]+)=([^&\s\"]*)")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self._hide(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = self._hide(record.msg)
        return True

    @classmethod
    def _hide(cls, text: str) -> str:
        if "=" not in text:  # most lines: no regex at all
            return text
        return cls._PARAMETER.sub(_hidden_if_token, text)


def _hidden_if_token(parameter: re.Match[str]) -> str:
    name = parameter.group(1)
    return f"{name}=***" if "token" in unquote_plus(name).casefold() else parameter.group(0)


class ClientFaults(logging.Filter):
    """A client's malformed frame is the client's fault: uvicorn logs a text frame that is no UTF-8 as
    an ERROR with its traceback (and closes the socket 1007), where a malformed request is a WARNING
    line. It is logged as that: an ERROR here means the server's own fault."""

    _FAULTS = frozenset({"Invalid UTF-8 sequence received from client."})

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.error" and record.msg in self._FAULTS:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True


class AnswerCut(BaseException):
    """Raised by the API out of an answer a stop cut half-way, for uvicorn to close its connection: the
    client sees the body end short of what it was promised, as it should. It was returned from instead,
    and uvicorn logged "ASGI callable returned without completing response" at ERROR. Not an Exception:
    no `except Exception` on the way takes it for a failure (a 500 the client could never read)."""


class PlannedStops(logging.Filter):
    """A stop's drain ends after UGC_STOP_GRACE (`ugc/cli/serving.py`) and cuts what still runs: that
    is planned, a warning, never an ERROR (an ERROR here means the server's own fault). uvicorn's line
    counting the tasks cut is a warning; its report of an answer cut (`AnswerCut`), which the API has
    logged already as one warning line naming the request, is dropped."""

    _CUT = "Cancel %s running task(s), timeout graceful shutdown exceeded"

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "uvicorn.error":
            return True
        if record.exc_info and isinstance(record.exc_info[1], AnswerCut):
            return False
        if record.msg == self._CUT:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC), level, logger, message, request_id, and exc_info."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        found = getattr(record, "request_id", None) or request_id.get()
        if found is not None:
            line["request_id"] = found
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def logging_config(log_format: str, level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` for the app's and uvicorn's loggers alike.

    Given to uvicorn as its `log_config`, so each worker process applies it when it starts.
    """
    formatter: dict[str, Any] = (
        {"()": "ugc.platform.logs.JsonFormatter"} if log_format == "json" else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": "ugc.platform.logs.RequestIdFilter"},
            "hide_tokens": {"()": "ugc.platform.logs.HideTokens"},
            "client_faults": {"()": "ugc.platform.logs.ClientFaults"},
            "planned_stops": {"()": "ugc.platform.logs.PlannedStops"},
        },
        "formatters": {"default": formatter},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["request_id", "hide_tokens", "client_faults", "planned_stops"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["default"], "level": level},
        # uvicorn's loggers write through the root handler, so their lines take the same format.
        "loggers": {
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": level, "propagate": True},
        },
    }
