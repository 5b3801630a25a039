"""Wire: how recorded events leave the app's process (producer) and what they look like (protocol)."""
