"""Where state and side effects go: Redis state and keys (Lua), outbox, webhooks, dead letters."""
