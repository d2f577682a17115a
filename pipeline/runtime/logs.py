"""Structured JSON logs on stdout, one line per call, in Powertools Logger's shape.

The keys are those Powertools' ``Logger`` writes (``level``, ``location``, ``message``,
``timestamp``, ``service``, the keys added with :meth:`StructuredLogger.append_keys`, the
``extra`` of the call, ``exception``/``exception_name``/``stack_trace`` after an exception, and
``xray_trace_id`` from ``_X_AMZN_TRACE_ID``), so CloudWatch Logs Insights queries written for
Powertools work on these lines. The runtime has its own because importing Powertools' Logger
costs ~70 ms of a container's cold start here (its package also loads Metrics and Tracer); the
runtime needs one logger with a handful of calls.

The level is the first of ``AWS_LAMBDA_LOG_LEVEL`` (Lambda's advanced logging controls, which
drop lower levels anyway), ``POWERTOOLS_LOG_LEVEL`` and ``LOG_LEVEL``; ``INFO`` without any.
https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-advanced.html

The lines are written by the logger's own handler to the current ``sys.stdout`` and do not
propagate to the root logger: Lambda's Python runtime has a handler there, which would write
each record a second time, as plain text.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from typing import Any

__all__ = ["JsonFormatter", "StructuredLogger", "log_level"]

# What a LogRecord carries by itself; any other attribute came from ``extra``.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime"}
_LEVEL_VARIABLES = ("AWS_LAMBDA_LOG_LEVEL", "POWERTOOLS_LOG_LEVEL", "LOG_LEVEL")


def log_level(environ: Any = os.environ) -> int:
    """The level the environment asks for (see the module's docstring); INFO by default. An
    unknown level name is ignored, as if it were not set."""
    for variable in _LEVEL_VARIABLES:
        name = str(environ.get(variable) or "").strip().upper()
        level = logging.getLevelName(name) if name else None
        if isinstance(level, int):
            return level
    return logging.INFO


class JsonFormatter(logging.Formatter):
    """One JSON object per record (Powertools' keys and order)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service
        self.keys: dict[str, Any] = {}

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """``2026-12-07 20:02:30,826+0000``: Powertools' default timestamp."""
        local = time.localtime(record.created)
        return (time.strftime("%Y-%m-%d %H:%M:%S", local) + f",{int(record.msecs):03d}"
                + time.strftime("%z", local))

    def format(self, record: logging.LogRecord) -> str:
        message: Any = record.msg if isinstance(record.msg, dict) else record.getMessage()
        line: dict[str, Any] = {
            "level": record.levelname,
            "location": f"{record.funcName}:{record.lineno}",
            "message": message,
            "timestamp": self.formatTime(record),
            "service": self.service,
            **self.keys,
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS:
                line[key] = value
        exc_info = record.exc_info
        if isinstance(exc_info, tuple) and exc_info[0] is not None:
            kind, error, tb = exc_info
            line["exception"] = self.formatException(exc_info)
            line["exception_name"] = kind.__name__
            line["stack_trace"] = {
                "type": kind.__name__, "value": str(error), "module": type(error).__module__,
                "frames": [{"file": f.filename, "line": f.lineno, "function": f.name,
                            "statement": f.line} for f in traceback.extract_tb(tb)]}
        trace = os.environ.get("_X_AMZN_TRACE_ID")
        if trace:
            line["xray_trace_id"] = trace.split(";", 1)[0].replace("Root=", "")
        return json.dumps(line, default=str, separators=(",", ":"), ensure_ascii=False)


class _Stdout(logging.Handler):
    """Writes to ``sys.stdout`` as it is when the record is written (a test's capture too)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stdout.write(self.format(record) + "\n")
        except Exception:  # a log line must never fail the record that wrote it
            self.handleError(record)


class StructuredLogger:
    """The logging calls of a ``logging.Logger`` (``debug`` … ``exception``, ``extra=``), plus
    ``append_keys``/``remove_keys`` for keys on every later line (the request id)."""

    def __init__(self, service: str, *, level: int | None = None) -> None:
        self.service = service
        self.formatter = JsonFormatter(service)
        self.handler = _Stdout()
        self.handler.setFormatter(self.formatter)
        self._logger = logging.getLogger(service)
        self._logger.handlers = [h for h in self._logger.handlers if not isinstance(h, _Stdout)]
        self._logger.addHandler(self.handler)
        self._logger.propagate = False
        self._logger.setLevel(log_level() if level is None else level)
        self.debug = self._logger.debug
        self.info = self._logger.info
        self.warning = self._logger.warning
        self.error = self._logger.error
        self.exception = self._logger.exception
        self.critical = self._logger.critical
        self.log = self._logger.log

    @property
    def logger(self) -> logging.Logger:
        """The standard library logger behind it (its level, extra handlers)."""
        return self._logger

    def append_keys(self, **keys: Any) -> None:
        self.formatter.keys.update(keys)

    def remove_keys(self, keys: list[str] | tuple[str, ...]) -> None:
        for key in keys:
            self.formatter.keys.pop(key, None)

    def setLevel(self, level: int | str) -> None:
        self._logger.setLevel(level)

    def addHandler(self, handler: logging.Handler) -> None:
        self._logger.addHandler(handler)

    def removeHandler(self, handler: logging.Handler) -> None:
        self._logger.removeHandler(handler)
