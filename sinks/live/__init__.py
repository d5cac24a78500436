"""Redis keys of the live rooms."""
