"""POST /v1/events through a real API process: every bad-input class gets a clear error,
valid neighbours flow, and received = accepted + rejected."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request

import pytest

from tests.support import Proc, counts, new_port, process_topic, wait_until

pytestmark = pytest.mark.integration

GOOD = {"event_id": "g1", "type": "payment", "ts": 1_794_326_400_000, "user_id": "u1",
        "order_id": "o1", "amount": 19_900, "status": "success", "channel": "search"}


def post(port, body: bytes, content_type="application/json"):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/events", data=body,
                                 headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def start_api(settings, spawn, **env: str) -> int:
    """An API process on a free port, once it answers."""
    return start_api_proc(settings, spawn, **env)[0]


def start_api_proc(settings, spawn, **env: str) -> tuple[int, Proc]:
    """``start_api``, and the process."""
    port = new_port()
    proc = spawn(settings, "api", "--port", str(port), env=env)

    def up():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return True
        except OSError:
            return False

    wait_until(up, 30, "api up")
    return port, proc


@pytest.fixture
def api(settings, spawn):
    return start_api(settings, spawn)


def with_(**over):
    return {**GOOD, **over}


BAD = [
    ("unknown_type", with_(event_id="b1", type="teleport"), "type"),
    ("invalid_field", {k: v for k, v in with_(event_id="b2").items() if k != "order_id"},
     "order_id"),
    ("invalid_field", with_(event_id="b3", amount="199"), "amount"),
    ("invalid_field", with_(event_id="b4", amount=-1), "amount"),
    ("not_an_object", 42, ""),
]


async def test_bad_events_are_rejected_with_reasons_and_good_ones_flow(settings, api):
    items = [with_(event_id="g1"), *[b[1] for b in BAD], with_(event_id="g2", user_id="u2")]
    status, body = post(api, json.dumps(items).encode())
    assert status == 207
    assert body["accepted"] == 2 and body["rejected"] == len(BAD)
    for (reason, _, fld), result in zip(BAD, body["results"][1:-1], strict=True):
        assert result["status"] == "rejected"
        assert result["reason"] == reason
        if fld:
            assert result["error"]["field"] == fld
            assert fld in result["detail"]
    await process_topic(settings)
    c = counts(settings)
    assert c["processed"] == 2 and c.get("dead", 0) == 0


def test_single_object_and_ndjson(api):
    status, body = post(api, json.dumps(with_(event_id="n0")).encode())
    assert status == 200 and body["accepted"] == 1
    nd = b"\n".join(json.dumps(with_(event_id=f"n{i}")).encode() for i in range(1, 4))
    nd += b"\n{not json\n"
    status, body = post(api, nd, "application/x-ndjson")
    assert status == 207
    assert [r["status"] for r in body["results"]] == ["accepted"] * 3 + ["rejected"]
    assert body["results"][3]["reason"] == "malformed_json"
    assert "line 4" in body["results"][3]["detail"]


def test_malformed_body_and_oversized_event(api):
    status, body = post(api, b'{"event_id": ')
    assert status == 400 and body["reason"] == "malformed_json"
    # Every field within its bounds, the record too large: an unknown extra field carries it.
    big = with_(event_id="big", blob="x" * 1_100_000)
    status, body = post(api, json.dumps([big, with_(event_id="ok")]).encode())
    assert status == 207
    assert body["results"][0]["reason"] == "oversized"
    assert body["results"][1]["status"] == "accepted"


def test_metrics_reconcile_received_with_accepted_and_rejected(api):
    post(api, json.dumps([with_(event_id="m1"), with_(event_id="m2", amount=-3)]).encode())
    with urllib.request.urlopen(f"http://127.0.0.1:{api}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    lines = {ln.split(" ")[0]: float(ln.split(" ")[1]) for ln in text.splitlines()
             if ln.startswith("shopstream_api_events_total")}
    assert lines['shopstream_api_events_total{result="accepted"}'] == 1
    assert lines['shopstream_api_events_total{result="rejected"}'] == 1


def test_an_item_nested_too_deep_is_rejected_before_anything_is_queued(api, settings):
    deep = b'{"x":' * 300 + b"1" + b"}" * 300
    good = json.dumps(with_(event_id="before")).encode()
    nested = json.dumps(with_(event_id="nested"))[:-1].encode() + b', "deep": ' + deep + b"}"
    status, body = post(api, b"[" + good + b"," + nested + b"]")
    assert status == 207
    assert body["results"][0]["status"] == "accepted"
    assert body["results"][1]["status"] == "rejected"
    assert body["results"][1]["reason"] == "malformed_json"


def test_broker_down_answers_503_saying_what_may_have_landed(infra, spawn, tmp_path):
    from shopstream.infra import start_broker, stop
    from tests.support import Infra

    broker_proc, broker = start_broker(log_path=tmp_path / "tansu.log")
    try:
        settings = Infra(broker, infra.redis_url).settings()
        port, api = start_api_proc(settings, spawn, SHOPSTREAM_API_PRODUCE_TIMEOUT_S="1")
    finally:
        stop(broker_proc)
    status, body = post(port, json.dumps([with_(event_id="a"), with_(event_id="b"),
                                          with_(event_id="c", amount=-1)]).encode())
    assert status == 503
    assert body["reason"] == "broker_unavailable"
    assert body["may_have_been_accepted"] == 2
    assert "deduplicated" in body["retry"]
    # What the broker never took must not hold the stop (it waited for the records' timeout).
    stopping = time.monotonic()
    api.popen.send_signal(signal.SIGTERM)
    assert api.popen.wait(15) == 0
    assert time.monotonic() - stopping < 10


def test_content_type_decides_and_every_field_error_is_reported(api):
    pretty = json.dumps(with_(event_id="pretty"), indent=2).encode()
    assert pretty.count(b"\n") > 5
    status, body = post(api, pretty, "application/json")
    assert status == 200 and body["accepted"] == 1
    status, body = post(api, json.dumps(with_(event_id="bad", user_id="", amount=-1,
                                              status="maybe")).encode())
    assert status == 400
    fields = [e["field"] for e in body["results"][0]["errors"]]
    assert fields == ["user_id", "amount", "status"]
    assert body["results"][0]["error"]["field"] == "user_id"


def test_an_oversized_chunked_body_gets_the_same_json_413(api):
    def chunks():
        piece = b"x" * 1_048_576
        for _ in range(9):
            yield piece

    req = urllib.request.Request(f"http://127.0.0.1:{api}/v1/events", data=chunks(),
                                 headers={"Content-Type": "application/json",
                                          "Transfer-Encoding": "chunked"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, body = resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        status, body = exc.code, json.loads(exc.read())
    assert status == 413 and body["reason"] == "oversized"


def test_livez_and_readyz(api):
    for path, want in (("/livez", "ok"), ("/readyz", "ready")):
        with urllib.request.urlopen(f"http://127.0.0.1:{api}{path}", timeout=10) as resp:
            assert resp.status == 200 and json.loads(resp.read())["status"] == want
