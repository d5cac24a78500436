"""The customer loop: tiers by yearly spend, points, lifecycle nudges, service tasks, referrals."""
