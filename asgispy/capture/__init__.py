"""Capture: the middleware that records connections, and the codec that makes them JSON."""
