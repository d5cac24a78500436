"""Stock health's keys and its judge's store (``agents/stock``)."""
