"""Traffic recorded elsewhere, made into asgispy sessions: HAR files from browsers and proxies.

An import writes the same session document Spy does (docs/format.md), so every command that
reads a session reads an imported one. What the other tool could not record is said in each
connection's notes, never made up.
"""
