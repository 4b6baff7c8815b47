"""The deterministic simulator: many gossip cores, one virtual clock, one seed."""
