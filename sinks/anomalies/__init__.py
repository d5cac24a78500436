"""The anomaly judge's keys and store: episodes committed atomically with their alerts."""
