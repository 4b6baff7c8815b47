/* A bitset read in place (a Bloom filter's bits form: bit i is bit i % 8 of byte i // 8; none
 * past the buffer), shared by _sparse.c (count_bits) and ../sketch/_bloombits.c (a filter's
 * reads and its fill count). */
#ifndef HEARSAY_BITSET_H
#define HEARSAY_BITSET_H

#include <stdint.h>
#include <string.h>

static inline int bitset_bit(const unsigned char *bytes, Py_ssize_t size, uint64_t position)
{
    uint64_t at = position >> 3;
    if (at >= (uint64_t)size)
        return 0;
    return (bytes[at] >> (position & 7)) & 1;
}

/* How many bits low <= i < high are set. */
static inline uint64_t bitset_count(const unsigned char *bytes, Py_ssize_t size, uint64_t low,
                                    uint64_t high)
{
    uint64_t limit = (uint64_t)size * 8;
    if (high > limit)
        high = limit;
    if (low >= high)
        return 0;
    uint64_t first = low / 8, last = (high - 1) / 8; /* the bytes holding both ends */
    unsigned head = (0xFFu << (low % 8)) & 0xFFu, tail = 0xFFu >> (7 - (high - 1) % 8);
    if (first == last)
        return (uint64_t)__builtin_popcount(bytes[first] & head & tail);
    uint64_t count = (uint64_t)__builtin_popcount(bytes[first] & head) +
                     (uint64_t)__builtin_popcount(bytes[last] & tail);
    uint64_t i = first + 1;
    for (; i + 8 <= last; i += 8) {
        uint64_t word;
        memcpy(&word, bytes + i, 8);
        count += (uint64_t)__builtin_popcountll(word);
    }
    for (; i < last; i++)
        count += (uint64_t)__builtin_popcount(bytes[i]);
    return count;
}

#endif
