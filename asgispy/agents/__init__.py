"""A view of the store for coding agents: the tools of ``asgispy mcp``.

:mod:`asgispy.agents.tools` holds the tools as plain functions over a
:class:`~asgispy.store.store.Store` (no MCP in them, so they are tested and typed like any
view); :mod:`asgispy.agents.render` turns scopes and messages into compact JSON an agent
reads cheaply; :mod:`asgispy.agents.sources` feeds the store from a session file or a
collector; :mod:`asgispy.agents.server` wires it all to the official ``mcp`` SDK, the only
module here that imports it (``pip install 'asgispy[mcp]'``). The package is named
``agents`` so that it never shadows the SDK's own ``mcp``.
"""
