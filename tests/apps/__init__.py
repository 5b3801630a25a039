"""Fixture apps for the capture tests: raw ASGI, Starlette, FastAPI and Django, plus a recorder."""
