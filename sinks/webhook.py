"""Webhook delivery of pushes: signed, bounded in time, retried with backoff, then dead-lettered.

Config ``[webhook]``: ``url``, ``secret``, ``timeout_ms`` (default 2000), ``max_attempts``
(default 5), ``backoff_ms`` (first retry delay, doubled each time, default 200).
Each request carries ``X-Shopstream-Signature: sha256=<hex HMAC-SHA256(secret, body)>`` and
``X-Shopstream-Push-Id``; receivers verify the first and dedupe by the second.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from shopstream.core.errors import ConfigError

SIGNATURE_HEADER = "X-Shopstream-Signature"
PUSH_ID_HEADER = "X-Shopstream-Push-Id"
#: Longest wait between two attempts, whatever the doubling says.
MAX_BACKOFF_S = 10.0
#: Requests in flight at once per sender: a slow receiver must not take every socket.
MAX_IN_FLIGHT = 16


@dataclass(frozen=True)
class WebhookConfig:
    url: str
    secret: str = field(repr=False)
    timeout_s: float = 2.0
    max_attempts: int = 5
    backoff_s: float = 0.2


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
    nums = {}
    limits = (("timeout_ms", 2000, 1), ("max_attempts", 5, 1), ("backoff_ms", 200, 0))
    for key, default, low in limits:
        val = raw.get(key, default)
        if isinstance(val, bool) or not isinstance(val, int) or val < low:
            raise ConfigError(f"webhook.{key}: expected an integer >= {low}, got {val!r}")
        nums[key] = val
    return WebhookConfig(url, secret, nums["timeout_ms"] / 1000, nums["max_attempts"],
                         nums["backoff_ms"] / 1000)


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    return hmac.compare_digest(sign(secret, body), header)


class WebhookSender:
    def __init__(self, cfg: WebhookConfig) -> None:
        self.cfg = cfg
        self._session: aiohttp.ClientSession | None = None
        self._sem = asyncio.Semaphore(MAX_IN_FLIGHT)

    async def deliver(self, push_id: str, body: bytes) -> str | None:
        """None once the receiver answered 2xx, else the reason it was given up."""
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self.cfg.timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout)
        headers = {"Content-Type": "application/json", PUSH_ID_HEADER: push_id,
                   SIGNATURE_HEADER: sign(self.cfg.secret, body)}
        reason = "not attempted"
        for attempt in range(self.cfg.max_attempts):
            try:
                post = self._session.post(self.cfg.url, data=body, headers=headers)
                async with self._sem, post as resp:
                    if 200 <= resp.status < 300:
                        return None
                    reason = f"http {resp.status}"
                    # A 4xx other than timeout/throttling will not change on retry.
                    if 400 <= resp.status < 500 and resp.status not in (408, 429):
                        return reason
            except (TimeoutError, aiohttp.ClientError) as exc:
                reason = type(exc).__name__
            if attempt + 1 < self.cfg.max_attempts:
                await asyncio.sleep(min(self.cfg.backoff_s * 2**attempt, MAX_BACKOFF_S))
        return f"{reason} after {self.cfg.max_attempts} attempts"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
