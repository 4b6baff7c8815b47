"""Sketches as views over max-vectors: HyperLogLog, Bloom, count-min, counters, max registers."""
