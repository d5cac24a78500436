"""Prometheus metrics, alert rules and dashboards."""

from monitoring.metrics import Metrics, bounded

__all__ = ["Metrics", "bounded"]
