"""Collector and store: the model of connections and events that every view reads."""
