"""Redis state of the customer loop (agents/customers): keys, users, outboxes."""
