"""Traffic value: UV, PV, sessions, bounce, dwell, conversion, AOV and UV value per bucket,
overall, by channel and by campaign (agent, rules, queries)."""
