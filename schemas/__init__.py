"""Event types and their validation."""
