"""Redis keys of traffic value."""
