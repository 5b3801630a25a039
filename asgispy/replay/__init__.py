"""Replay and compare recorded traffic (views over the store: ``compare``, ``runner``)."""
