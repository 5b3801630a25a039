"""A built-in demo app and the traffic that exercises it."""
