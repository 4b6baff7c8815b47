"""hearsay: a distributed, eventually consistent sketch database.

Every key maps to a sparse vector of integers that only grows by element-wise max (a
join-semilattice), so replicas merge in any order, any number of times, and agree. Sketches
(HyperLogLog, Bloom, count-min, counters, max registers) are views over those vectors.
"""

__version__ = "0.1.0"
