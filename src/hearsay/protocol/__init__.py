"""The sans-IO gossip core: bytes, addresses and now_ms in; datagrams, events and timers out."""
