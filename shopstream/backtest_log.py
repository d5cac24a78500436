"""What a backtest needs from its log before and after the runs: a digest (it names the
namespaces), the span of event time, and the successful payments (the GMV after a push)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import NamedTuple

from shopstream.schemas import decode
from shopstream.schemas.events import Payment


class Paid(NamedTuple):
    """A successful payment in the log."""

    user_id: str
    ts: int
    order_id: str
    amount_fen: int


@dataclass
class LogSummary:
    path: str
    sha256: str = ""
    #: Non-empty lines: what replay sends.
    lines: int = 0
    #: Lines that are valid events.
    valid: int = 0
    from_ts: int | None = None
    to_ts: int | None = None
    paid: list[Paid] = field(default_factory=list)


def scan_log(path: str) -> LogSummary:
    """One pass over the file: digest of its bytes, lines, event-time span, payments."""
    out = LogSummary(path)
    digest = hashlib.sha256()
    low: int | None = None
    high: int | None = None
    with open(path, "rb") as fh:
        for raw in fh:
            digest.update(raw)
            line = raw.rstrip(b"\r\n")
            if not line:
                continue
            out.lines += 1
            try:
                ev = decode.decode_event(line)
            except decode.DecodeFailed:
                continue
            out.valid += 1
            low = ev.ts if low is None or ev.ts < low else low
            high = ev.ts if high is None or ev.ts > high else high
            if isinstance(ev, Payment) and ev.status == "success":
                out.paid.append(Paid(ev.user_id, ev.ts, ev.order_id, ev.amount))
    out.sha256, out.from_ts, out.to_ts = digest.hexdigest(), low, high
    return out
