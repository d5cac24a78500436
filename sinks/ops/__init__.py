"""Redis keys of the shop's pulse."""
