"""Funnels: per-user step progress, conversion per bucket and window (agent, rules, queries)."""
