"""The version of asgispy, in a module of its own that imports nothing, so that any layer can name
it (in a session file, a hello frame, a HAR creator) without importing the facade."""

__version__ = "0.1.0"
