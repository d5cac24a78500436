"""Redis keys of the event stats."""
