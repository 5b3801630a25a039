"""The store: the connections every view reads, built from records (live, or a session file).

It judges each connection as it grows (the analyses of :mod:`asgispy.analysis`), and knows
nothing of sockets: the collector in :mod:`asgispy.wire` feeds it.
"""
