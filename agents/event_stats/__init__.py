"""Event counts, GMV and payments per minute, type and channel."""
