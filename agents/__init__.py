"""Capabilities: each turns a partition's batch of events into state operations."""
