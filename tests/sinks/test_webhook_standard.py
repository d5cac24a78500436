"""The sender against real receivers: one verifying with the `standardwebhooks` library, one
answering redirects; and the retry delays spread by jitter."""

from __future__ import annotations

import base64
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from shopstream.core.errors import ConfigError
from shopstream.sinks.webhook import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookSender,
    parse_webhook,
    sign,
)
from tests.support import ROOT, new_port

KEY = bytes(range(32))
WHSEC = "whsec_" + base64.b64encode(KEY).decode()
PLAIN = "plain-secret-0123456789"

Serve = Callable[[Callable[[web.Request], Any]], Any]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start a loopback receiver with one POST handler at /hook; returns its base URL."""
    runners: list[web.AppRunner] = []

    async def _serve(handler: Callable[[web.Request], Any]) -> str:
        app = web.Application()
        app.router.add_post("/hook", handler)
        app.router.add_post("/elsewhere", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        port = new_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return f"http://127.0.0.1:{port}"

    yield _serve
    for runner in runners:
        await runner.cleanup()


@pytest.mark.parametrize(("secret", "receiver_secret"), [(WHSEC, WHSEC), (PLAIN, PLAIN.encode())])
async def test_a_standard_webhooks_receiver_verifies_every_push(serve, secret, receiver_secret):
    """``whsec_<base64>``: the receiver is handed the same string; a plain secret: its UTF-8
    bytes (the library would base64-decode a plain string)."""
    verifier = Webhook(receiver_secret)
    verified: list[Any] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            verified.append(verifier.verify(body, dict(request.headers)))
        except WebhookVerificationError:
            return web.Response(status=401)
        return web.Response(status=204)

    base = await serve(handle)
    cfg = parse_webhook({"webhook": {"url": f"{base}/hook", "secret": secret}})
    assert cfg is not None
    sender = WebhookSender(cfg)
    try:
        answers = [await sender.deliver(f"p{i}", b'{"n":%d}' % i) for i in range(3)]
    finally:
        await sender.close()
    assert [a.outcome for a in answers] == ["sent"] * 3
    assert verified == [{"n": 0}, {"n": 1}, {"n": 2}]


def test_whsec_secrets_must_decode_to_enough_key_bytes() -> None:
    for bad in ("whsec_not base64!", "whsec_" + base64.b64encode(b"k" * 15).decode(), "whsec_"):
        with pytest.raises(ConfigError, match="webhook.secret: expected whsec_<base64>"):
            parse_webhook({"webhook": {"url": "http://x", "secret": bad}})
    cfg = parse_webhook({"webhook": {"url": "http://x", "secret": WHSEC}})
    assert cfg is not None and cfg.key == KEY and "whsec" not in repr(cfg)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirects_are_not_followed(serve, status):
    """A redirect would re-POST the signed body and headers to a URL nobody configured: it is a
    failed attempt, retried like a 5xx (fixing the url loses nothing)."""
    hits: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(status=status, headers={"Location": "/elsewhere"})

    base = await serve(handle)
    cfg = parse_webhook({"webhook": {"url": f"{base}/hook", "secret": PLAIN}})
    assert cfg is not None
    sender = WebhookSender(cfg)
    try:
        answer = await sender.deliver("p1", b"{}")
    finally:
        await sender.close()
    assert hits == ["/hook"]
    assert answer.outcome == "retry" and answer.reason == f"http {status} (redirect not followed)"


def test_retry_delays_are_jittered() -> None:
    """1,000 pushes failing together come back spread over the backoff, not in one instant."""
    cfg = parse_webhook({"webhook": {"url": "http://x", "secret": PLAIN, "backoff_ms": 1000}})
    assert cfg is not None
    for attempts, ceiling in ((1, 1.0), (2, 2.0), (4, 8.0), (40, cfg.max_backoff_s)):
        rnd = random.Random(attempts)
        delays = [cfg.delay_s(attempts, None, rnd.random) for _ in range(1000)]
        assert all(0 <= d <= ceiling for d in delays)
        # full jitter: uniform over [0, ceiling], so each tenth holds about a tenth
        tenths = [sum(int(d / ceiling * 10) == i for d in delays) for i in range(10)]
        assert min(tenths) > 60, tenths
    # the random source decides: the same draws give the same delays
    assert cfg.delay_s(3, None, lambda: 0.25) == 1.0
    assert cfg.delay_s(3, None, lambda: 0.0) == 0.0
    # a receiver's Retry-After is a floor
    assert cfg.delay_s(3, 120.0, lambda: 0.5) == 120.0
    # with the default source, delays of one attempt differ
    assert len({cfg.delay_s(5, None) for _ in range(100)}) > 90


@pytest.mark.parametrize("secret", [WHSEC, PLAIN])
def test_the_documented_receiver_verifies_our_signatures(secret) -> None:
    doc = (ROOT / "docs" / "cart-recovery.md").read_text()
    blocks = [b.split("\n", 1)[1] for b in doc.split("```")[1::2] if b.startswith("python\n")]
    receiver = next(b for b in blocks if "standardwebhooks" in b)
    scope: dict[str, Any] = {"secret": secret}
    exec(receiver, scope)  # noqa: S102 - the docs' own example, run as written
    now = int(time.time())
    headers = {ID_HEADER: "p1", TIMESTAMP_HEADER: str(now),
               SIGNATURE_HEADER: sign(secret, "p1", now, b'{"a":1}')}
    assert scope["verify"](headers, b'{"a":1}')
    assert not scope["verify"](headers, b'{"a":2}')
    assert not scope["verify"]({**headers, TIMESTAMP_HEADER: str(now - 600)}, b'{"a":1}')
