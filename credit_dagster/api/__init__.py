"""The scoring API: HTTP routes over on-demand scoring and the serving snapshot, keys, request schemas."""
