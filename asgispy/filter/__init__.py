"""The filter language of the dashboard's ``/``, ``--filter`` and the agents' tools."""
