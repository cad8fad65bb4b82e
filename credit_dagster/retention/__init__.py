"""Retention: each store's data removed when its period ends, once a day (policy.py), recorded."""
