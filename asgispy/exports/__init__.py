"""Exports: plain functions from the model to files other tools read (JSON, HAR, curl)."""
