import pytest

from shopstream.core.errors import ConfigError
from shopstream.sinks.webhook import parse_webhook, sign, verify


def test_webhook_config_and_signature() -> None:
    assert parse_webhook({}) is None
    cfg = parse_webhook({"webhook": {"url": "http://127.0.0.1:1/x", "secret": "s" * 16}})
    assert cfg is not None and cfg.max_attempts is None and "ssss" not in repr(cfg)
    assert cfg.retry_horizon_s == 86_400 and cfg.delay_s(30, None) == cfg.max_backoff_s
    assert cfg.delay_s(1, 120.0) == 120.0
    for bad in ({"url": "ftp://x", "secret": "s" * 16}, {"url": "http://x", "secret": "short"},
                {"url": "http://x", "secret": "s" * 16, "max_attempts": 0}):
        with pytest.raises(ConfigError, match="webhook"):
            parse_webhook({"webhook": bad})
    sig = sign("k" * 16, b"body")
    assert verify("k" * 16, b"body", sig) and not verify("k" * 16, b"body2", sig)
