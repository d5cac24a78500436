"""The anomaly judge's store: episodes committed atomically with their alerts."""
