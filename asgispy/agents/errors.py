"""The one error the agents' tools raise: a call the agent can correct, in words it can act on.

Apart from the tools themselves so that both the reading tools and the changing ones
(:mod:`asgispy.agents.intercepting`) raise it, and the server turns it into a tool error.
"""

__all__ = ["ToolError"]


class ToolError(Exception):
    """A call the agent can correct: a filter it got wrong, an id that is not there."""
