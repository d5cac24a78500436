"""Group buys: open at the first join, complete at the target or expire at the deadline."""
