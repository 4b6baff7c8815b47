"""The asyncio runtime: sockets, timers and signals around the sans-IO core."""
