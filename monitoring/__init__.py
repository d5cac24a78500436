"""Prometheus metrics, alert rules and dashboards."""
