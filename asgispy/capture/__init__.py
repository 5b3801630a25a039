"""Capture: what Spy records in the app's process, on the request path and just after it.

Snapshots of the scope and of each message (snapshot), the record of one connection (record),
its packed and document forms (packing, documents), the history kept in the app's memory, the
layers mode's taps, the skip rules and the recorder's origin. Nothing here starts a thread or
opens a socket: :mod:`asgispy.spy` does, above both capture and the wire.
"""
