"""Flash-sale stock in Redis: its keys, its atomic Lua scripts and their callers."""
