"""Group buys' keys (``agents/group_buys``)."""
