"""Redis keys of the funnels."""
