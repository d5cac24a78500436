import pytest

from shopstream.kafka_io.envelope_producer import EnvelopeProducer
from tests.support import counts, process_topic

pytestmark = pytest.mark.integration


async def test_events_flow_through_the_batch_loop(settings):
    prod = EnvelopeProducer(settings, max_events=50)
    for i in range(1000):
        prod.add({"event_id": f"e{i}", "type": "page_view", "ts": 1_795_000_000_000 + i,
                  "user_id": f"u{i % 37}", "page": "home"})
    prod.add_raw(b"{broken")
    prod.flush()
    await process_topic(settings)
    c = counts(settings)
    assert c["in"] == 1001
    assert c["processed"] == 1000
    assert c["dead"] == 1
