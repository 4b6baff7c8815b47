"""The lattice: max-vectors, entries and the keyspace. Knows nothing of networks or sketches."""
