"""Kafka in and out: envelopes, producers, the batch loop and the Faust worker."""

from streams.envelope import DeadLetter, Reason, decode_record
from streams.producer import EnvelopeProducer

__all__ = ["DeadLetter", "EnvelopeProducer", "Reason", "decode_record"]
