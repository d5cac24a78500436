"""Webhook delivery of pushes: one signed attempt at a time; the outbox relay spaces retries.

Config ``[webhook]``: ``url``, ``secret``, ``timeout_ms`` (default 2000), ``backoff_ms`` (first
retry delay, doubled each time, default 200), ``max_backoff_ms`` (default 60000),
``retry_horizon_s`` (how long a push is retried before it is dead-lettered, default 86400 = a
day) and optionally ``max_attempts`` (also dead-letter after that many attempts; unset by
default, so an outage shorter than the horizon loses nothing). A receiver's ``Retry-After``
(seconds) is honoured. Each request carries ``X-Shopstream-Signature: sha256=<hex
HMAC-SHA256(secret, body)>`` and the push id as ``X-Shopstream-Push-Id`` and
``Idempotency-Key``; receivers verify the first and dedupe by the second.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import aiohttp

from shopstream.core.errors import ConfigError

SIGNATURE_HEADER = "X-Shopstream-Signature"
PUSH_ID_HEADER = "X-Shopstream-Push-Id"
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: Requests in flight at once per sender: a slow receiver must not take every socket.
MAX_IN_FLIGHT = 16


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

    def delay_s(self, attempts: int, retry_after_s: float | None) -> float:
        """Wait before the next attempt, after ``attempts`` failed ones."""
        doubled = min(self.backoff_s * 2 ** min(attempts - 1, 30), self.max_backoff_s)
        return max(doubled, retry_after_s or 0.0)


class Delivery(NamedTuple):
    """What one attempt came to: ``sent``, ``retry`` (transient) or ``failed`` (for good)."""

    outcome: str
    reason: str = ""
    retry_after_s: float | None = None


def parse_webhook(sections: Mapping[str, Any]) -> WebhookConfig | None:
    """``[webhook]`` table, or None when absent (pushes then go to Kafka only)."""
    raw = sections.get("webhook")
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"webhook: expected a table, got {raw!r}")
    url, secret = raw.get("url"), raw.get("secret")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ConfigError(f"webhook.url: expected an http(s) URL, got {url!r}")
    if not isinstance(secret, str) or len(secret) < 16:
        raise ConfigError("webhook.secret: expected a string of >= 16 characters, got other")
    nums: dict[str, int | None] = {}
    limits = (("timeout_ms", 2000, 1), ("max_attempts", None, 1), ("backoff_ms", 200, 0),
              ("max_backoff_ms", 60_000, 1), ("retry_horizon_s", 86_400, 1))
    for key, default, low in limits:
        val = raw.get(key, default)
        if val is None:
            nums[key] = None
            continue
        if isinstance(val, bool) or not isinstance(val, int) or not low <= val <= 10**9:
            raise ConfigError(f"webhook.{key}: expected an integer {low}..10**9, got {val!r}")
        nums[key] = val
    return WebhookConfig(url, secret, int(nums["timeout_ms"] or 0) / 1000, nums["max_attempts"],
                         int(nums["backoff_ms"] or 0) / 1000,
                         int(nums["max_backoff_ms"] or 0) / 1000,
                         float(nums["retry_horizon_s"] or 0))


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    return hmac.compare_digest(sign(secret, body), header)


class WebhookSender:
    def __init__(self, cfg: WebhookConfig) -> None:
        self.cfg = cfg
        self._session: aiohttp.ClientSession | None = None
        self._sem = asyncio.Semaphore(MAX_IN_FLIGHT)

    async def deliver(self, push_id: str, body: bytes) -> Delivery:
        """One attempt: ``sent`` on 2xx, ``failed`` on a 4xx that retrying cannot change,
        ``retry`` on anything else (5xx, 408, 429, timeouts, refused connections)."""
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self.cfg.timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout)
        headers = {"Content-Type": "application/json", PUSH_ID_HEADER: push_id,
                   IDEMPOTENCY_HEADER: push_id, SIGNATURE_HEADER: sign(self.cfg.secret, body)}
        try:
            post = self._session.post(self.cfg.url, data=body, headers=headers)
            async with self._sem, post as resp:
                if 200 <= resp.status < 300:
                    return Delivery("sent")
                reason = f"http {resp.status}"
                if 400 <= resp.status < 500 and resp.status not in (408, 429):
                    return Delivery("failed", reason)
                return Delivery("retry", reason, _retry_after(resp.headers.get("Retry-After")))
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
