"""Structured, quiet logging: one JSON object per line at INFO and above."""

from __future__ import annotations

import logging
import sys
import time

import orjson

#: librdkafka's own lines (every confluent-kafka client's ``logger``). Its connection errors are
#: retried by the client and a failure surfaces as an error of the operation, so they are shown
#: only at DEBUG: a broker stopping under a client prints nothing.
LIBRDKAFKA_LOGGER = "shopstream.librdkafka"

_STD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": int(time.time() * 1000),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STD:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def setup(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Faust, aiokafka and mode log every rebalance step at INFO; keep them to warnings.
    for noisy in ("faust", "aiokafka", "mode", "kafka"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    quiet = logging.DEBUG if root.level <= logging.DEBUG else logging.CRITICAL
    logging.getLogger(LIBRDKAFKA_LOGGER).setLevel(quiet)
