"""Where state and side effects go: Redis state, dead letters, outbox relay, webhooks."""

from sinks.redis_state import Fence, Ops, RedisState, make_redis

__all__ = ["Fence", "Ops", "RedisState", "make_redis"]
