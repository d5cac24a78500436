"""Capabilities: each turns a partition's batch of events into state changes."""

from agents.base import Agent, NoHooks, PartitionBatch
from agents.registry import build_agents

__all__ = ["Agent", "NoHooks", "PartitionBatch", "build_agents"]
