"""Redis keys of the coupon pushes and their budgets."""
