"""The database: where the keyspace, sketches, gossip and persistence meet."""
