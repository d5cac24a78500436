"""Kafka in and out: the producer wrapper, partitioner, envelopes, topic admin."""
