"""Redis keys of the shop's pulse and its anomaly judge."""
