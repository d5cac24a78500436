"""The shop's pulse: orders, payments, GMV and top SKUs per minute (agent, queries)."""
