"""Changing what crosses the boundary, for an app that asked for it: addons (Python hooks),
rules (TOML) and what they did, journaled on each connection. See docs/intercept.md."""
