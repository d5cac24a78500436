"""Webhook delivery of pushes: one signed attempt at a time; the outbox relay spaces retries.

Config ``[webhook]``: ``url``, ``secret``, ``timeout_ms`` (default 2000), ``backoff_ms`` (first
retry delay, doubled each time, default 200), ``max_backoff_ms`` (default 60000),
``retry_horizon_s`` (how long a push is retried before it is dead-lettered, default 86400 = a
day) and optionally ``max_attempts`` (also dead-letter after that many attempts; unset by
default, so an outage shorter than the horizon loses nothing). Retry delays are jittered
(``core.backoff``) so pushes that failed together are not retried together; a receiver's
``Retry-After`` (seconds) is a floor. Redirects are never followed: a 3xx is a failed attempt,
retried like a 5xx (the signed request must not go to a URL nobody configured).

Signed per Standard Webhooks: ``webhook-id`` (the push id, also sent as ``Idempotency-Key``),
``webhook-timestamp`` (Unix seconds) and ``webhook-signature: v1,<base64 HMAC-SHA256(key,
"<id>.<timestamp>.<body>")>``. The key is the base64-decoded rest of a ``whsec_<base64>``
secret (the convention of the spec and its libraries), else the secret's UTF-8 bytes. The
timestamp is signed, so a receiver that rejects stale timestamps (``verify``: 5 minutes) cannot
be replayed a captured request; it dedupes by the id. Receivers: docs/cart-recovery.md.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, NamedTuple

import aiohttp
import msgspec

from shopstream.core.backoff import full_jitter
from shopstream.core.errors import ConfigError
from shopstream.core.sections import read_section

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: A receiver accepts a signature this many seconds away from its clock, no more.
TOLERANCE_S = 300
#: Requests in flight at once per sender: a slow receiver must not take every socket.
MAX_IN_FLIGHT = 16
#: Prefix of a Standard Webhooks secret: base64 of the key bytes follows.
WHSEC_PREFIX = "whsec_"
#: Fewest key bytes (or characters of a plain secret): short keys are guessed.
MIN_KEY_BYTES = 16


@dataclass(frozen=True)
class WebhookConfig:
    url: str
    secret: str = field(repr=False)
    timeout_s: float = 2.0
    #: None: retried until ``retry_horizon_s`` has passed.
    max_attempts: int | None = None
    backoff_s: float = 0.2
    max_backoff_s: float = 60.0
    retry_horizon_s: float = 86_400.0

    @property
    def key(self) -> bytes:
        """The HMAC key the secret stands for."""
        return signing_key(self.secret)

    def delay_s(self, attempts: int, retry_after_s: float | None,
                rand: Callable[[], float] = random.random) -> float:
        """Wait before the next attempt, after ``attempts`` failed ones: full jitter over the
        doubled backoff, at least the receiver's ``Retry-After``."""
        jittered = full_jitter(attempts - 1, self.backoff_s, self.max_backoff_s, rand)
        return max(jittered, retry_after_s or 0.0)


class Delivery(NamedTuple):
    """What one attempt came to: ``sent``, ``retry`` (transient), ``failed`` (for good), or
    ``skipped`` (not made: the sender is stopping, see ``WebhookSender.hold``)."""

    outcome: str
    reason: str = ""
    retry_after_s: float | None = None


#: Counts and durations of the webhook table; None (not written in TOML) leaves
#: ``max_attempts`` unlimited and the others 0.
Count = Annotated[int, msgspec.Meta(ge=1, le=10**9, extra={"expected": "an integer 1..10**9"})]
Delay = Annotated[int, msgspec.Meta(ge=0, le=10**9, extra={"expected": "an integer 0..10**9"})]


class WebhookSection(msgspec.Struct, frozen=True):
    """``[webhook]`` or ``[ops_webhook]`` as written (ms); ``WebhookConfig`` is what is used."""

    url: Annotated[str, msgspec.Meta(pattern="^https?://", extra={"expected": "an http(s) URL"})]
    secret: Annotated[str, msgspec.Meta(extra={"expected": "a string", "got": "other"})]
    timeout_ms: Count | None = 2000
    max_attempts: Count | None = None
    backoff_ms: Delay | None = 200
    max_backoff_ms: Count | None = 60_000
    retry_horizon_s: Count | None = 86_400


def parse_webhook(sections: Mapping[str, Any], name: str = "webhook") -> WebhookConfig | None:
    """``[webhook]`` (pushes) or ``[ops_webhook]`` (ops alerts) table, or None when absent
    (then they go to Kafka only)."""
    if sections.get(name) is None:
        return None
    raw = read_section(sections, name, WebhookSection)
    secret = raw.secret
    if secret.startswith(WHSEC_PREFIX):
        try:
            key_bytes = signing_key(secret)
        except binascii.Error:
            key_bytes = b""
        if len(key_bytes) < MIN_KEY_BYTES:
            raise ConfigError(f"{name}.secret: expected whsec_<base64> of >= {MIN_KEY_BYTES} "
                              "key bytes, got other")
    elif len(secret) < MIN_KEY_BYTES:
        raise ConfigError(f"{name}.secret: expected a string of >= {MIN_KEY_BYTES} characters "
                          "or whsec_<base64>, got other")
    return WebhookConfig(raw.url, secret, (raw.timeout_ms or 0) / 1000, raw.max_attempts,
                         (raw.backoff_ms or 0) / 1000, (raw.max_backoff_ms or 0) / 1000,
                         float(raw.retry_horizon_s or 0))


def signing_key(secret: str | bytes) -> bytes:
    """Key bytes of a secret: ``whsec_<base64>`` decoded (binascii.Error when it is not base64),
    another string as UTF-8; bytes are the key itself."""
    if isinstance(secret, bytes):
        return secret
    if secret.startswith(WHSEC_PREFIX):
        encoded = secret[len(WHSEC_PREFIX):]
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    return secret.encode()


def sign(secret: str | bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value of one request."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    mac = hmac.new(signing_key(secret), signed, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def verify(secret: str | bytes, headers: Mapping[str, str], body: bytes,
           now_s: float | None = None) -> bool:
    """Receiver side: the signature matches and the timestamp is within TOLERANCE_S."""
    msg_id, stamp = headers.get(ID_HEADER, ""), headers.get(TIMESTAMP_HEADER, "")
    if not stamp.isdigit():
        return False
    now_s = time.time() if now_s is None else now_s
    if abs(now_s - int(stamp)) > TOLERANCE_S:
        return False
    expected = sign(secret, msg_id, int(stamp), body)
    given = headers.get(SIGNATURE_HEADER, "").split(" ")
    return any(hmac.compare_digest(expected, sig) for sig in given)


def classify(status: int, headers: Mapping[str, str]) -> Delivery:
    """``sent`` on 2xx; ``failed`` on a 4xx that retrying cannot change; ``retry`` on anything
    else: 3xx (never followed), 5xx, 408, 429."""
    if 200 <= status < 300:
        return Delivery("sent")
    if 300 <= status < 400:
        return Delivery("retry", f"http {status} (redirect not followed)",
                        _retry_after(headers.get("Retry-After")))
    if 400 <= status < 500 and status not in (408, 429):
        return Delivery("failed", f"http {status}")
    return Delivery("retry", f"http {status}", _retry_after(headers.get("Retry-After")))


class WebhookSender:
    def __init__(self, cfg: WebhookConfig) -> None:
        self.cfg = cfg
        self._key = cfg.key
        self._session: aiohttp.ClientSession | None = None
        self._sem = asyncio.Semaphore(MAX_IN_FLIGHT)
        self.holding = False

    def hold(self) -> None:
        """Start no new request (the worker is stopping): requests in flight finish, later
        calls answer ``skipped`` at once."""
        self.holding = True

    async def deliver(self, push_id: str, body: bytes) -> Delivery:
        """One attempt (see ``classify``); timeouts and refused connections are ``retry``."""
        async with self._sem:
            if self.holding:
                return Delivery("skipped", "sender stopping")
            if self._session is None:
                timeout = aiohttp.ClientTimeout(total=self.cfg.timeout_s)
                self._session = aiohttp.ClientSession(timeout=timeout)
            stamp = int(time.time())
            headers = {"Content-Type": "application/json", ID_HEADER: push_id,
                       TIMESTAMP_HEADER: str(stamp), IDEMPOTENCY_HEADER: push_id,
                       SIGNATURE_HEADER: sign(self._key, push_id, stamp, body)}
            try:
                async with self._session.post(self.cfg.url, data=body, headers=headers,
                                              allow_redirects=False) as resp:
                    return classify(resp.status, resp.headers)
            except (TimeoutError, aiohttp.ClientError) as exc:
                return Delivery("retry", type(exc).__name__)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _retry_after(value: str | None) -> float | None:
    """Seconds of a ``Retry-After`` header (the delta form; a date is ignored), at most a day."""
    if value is None or not value.strip().isdigit():
        return None
    return min(float(value.strip()), 86_400.0)
