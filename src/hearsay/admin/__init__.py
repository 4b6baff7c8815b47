"""Operator tools that talk to running nodes over RESP: the admin CLI, import, the demo.

Nothing here reaches into a node's internals: every tool is a Redis client (redis-py) of a
``hearsay serve`` process, so what it does an operator could do with redis-cli, and the
node's interface stays the one contract.
"""
