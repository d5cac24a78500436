import pytest
from confluent_kafka import Consumer, TopicPartition

from shopstream.kafka_io.client_config import librdkafka_config
from shopstream.kafka_io.partitioner import murmur2, partition_for
from shopstream.kafka_io.producer import make_producer


def test_murmur2_known_values():
    # Values from Kafka's Java client tests (UtilsTest.testMurmur2).
    assert murmur2(b"21") == (-973932308) & 0xFFFFFFFF
    assert murmur2(b"foobar") == (-790332482) & 0xFFFFFFFF
    assert murmur2(b"a-little-bit-long-string") == (-985981536) & 0xFFFFFFFF
    assert murmur2(b"a-little-bit-longer-string") == (-1486304829) & 0xFFFFFFFF
    assert murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") == (-58897971) & 0xFFFFFFFF
    assert murmur2(bytes([ord("a"), ord("b"), ord("c")])) == 479470107


@pytest.mark.integration
def test_envelopes_land_where_keyed_records_land(settings):
    """librdkafka's murmur2_random places each keyed record where partition_for says."""
    prod = make_producer(settings)
    users = [f"user-{i}" for i in range(300)]
    for u in users:
        prod.produce(settings.events_topic, key=u.encode(), value=b"{}")
    assert prod.flush(10) == 0
    c = Consumer({**librdkafka_config(settings), "group.id": "pt", "enable.partition.eof": True})
    c.assign([TopicPartition(settings.events_topic, p, 0) for p in range(settings.partitions)])
    seen = {}
    eofs = 0
    while eofs < settings.partitions:
        for m in c.consume(1000, timeout=1.0):
            if m.error():
                eofs += 1
                continue
            seen[m.key().decode()] = m.partition()
    c.close()
    assert len(seen) == len(users)
    assert all(seen[u] == partition_for(u, settings.partitions) for u in users)
