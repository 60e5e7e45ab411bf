"""Global rate limits for the edge: Envoy's RateLimitService v3 protocol, counters in Redis."""
