"""Ad economics (agents/ads): its Redis keys, and its alert store with its Lua beside it."""
