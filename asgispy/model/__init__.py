"""The model every view reads: sessions, connections, their events and layers, as recorded."""
