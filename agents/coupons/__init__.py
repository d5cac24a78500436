"""Coupon pushes: cart recovery, threshold nudges, new users, live follow-ups."""
