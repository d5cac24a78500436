import base64
import hashlib
import hmac

import pytest

from shopstream.core.errors import ConfigError
from shopstream.sinks.webhook import parse_webhook, sign, verify


def test_webhook_config_and_signature() -> None:
    assert parse_webhook({}) is None
    cfg = parse_webhook({"webhook": {"url": "http://127.0.0.1:1/x", "secret": "s" * 16}})
    assert cfg is not None and cfg.max_attempts is None and "ssss" not in repr(cfg)
    assert cfg.retry_horizon_s == 86_400 and cfg.delay_s(30, None, lambda: 1.0) == cfg.max_backoff_s
    assert cfg.delay_s(1, 120.0) == 120.0
    for bad in ({"url": "ftp://x", "secret": "s" * 16}, {"url": "http://x", "secret": "short"},
                {"url": "http://x", "secret": "s" * 16, "max_attempts": 0}):
        with pytest.raises(ConfigError, match="webhook"):
            parse_webhook({"webhook": bad})
    key, now = "k" * 16, 1_800_000_000
    headers = {"webhook-id": "p1", "webhook-timestamp": str(now),
               "webhook-signature": sign(key, "p1", now, b"body")}
    assert verify(key, headers, b"body", now_s=now + 10)
    assert not verify(key, headers, b"body2", now_s=now)  # body changed
    assert not verify(key, {**headers, "webhook-id": "p2"}, b"body", now_s=now)
    # a captured request replayed ten minutes later is refused
    assert not verify(key, headers, b"body", now_s=now + 600)
    # a known vector: HMAC-SHA256 of "p1.1800000000.body" with key "k" * 16
    assert sign(key, "p1", now, b"body") == "v1," + base64.b64encode(
        hmac.new(key.encode(), b"p1.1800000000.body", hashlib.sha256).digest()).decode()
