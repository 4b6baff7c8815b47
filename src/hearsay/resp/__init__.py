"""The Redis protocol (RESP2/RESP3): a sans-IO parser and the command table."""
