/* Packed sparse pairs read in place, shared by _sparse.c (the lattice's few-pair merges and
 * reads), ../sketch/_packed.c (a cuckoo filter's walk over its buckets) and
 * ../sketch/_heavykeeper.c (a TOPK.ADD reading its own slice) and ../sketch/_bloombits.c (a sparse
 * Bloom filter's many-item reads).
 *
 * Layout (MaxVector's sparse form): one byte, the value width w (1, 2, 4 or 8); then the count
 * n of indices as little-endian uint32, ascending; then the n values as little-endian unsigned
 * ints of w bytes each. The byte string's length is 1 + n * (4 + w).
 */
#ifndef HEARSAY_PACKED_PAIRS_H
#define HEARSAY_PACKED_PAIRS_H

#include <stdint.h>

typedef struct {
    const unsigned char *bytes;
    Py_ssize_t count;
    int width;
    const unsigned char *held; /* the first value */
} Packed;

static inline uint32_t read_index(const unsigned char *at)
{
    return (uint32_t)at[0] | (uint32_t)at[1] << 8 | (uint32_t)at[2] << 16 | (uint32_t)at[3] << 24;
}

static inline uint64_t read_value(const unsigned char *at, int width)
{
    uint64_t v = 0;
    for (int b = width - 1; b >= 0; b--)
        v = (v << 8) | at[b];
    return v;
}

/* `obj` as packed pairs; 0 and ValueError/TypeError when it is not. */
static inline int packed_of(PyObject *obj, Packed *out)
{
    if (!PyBytes_Check(obj)) {
        PyErr_SetString(PyExc_TypeError, "packed pairs must be bytes");
        return 0;
    }
    Py_ssize_t len = PyBytes_GET_SIZE(obj);
    const unsigned char *bytes = (const unsigned char *)PyBytes_AS_STRING(obj);
    int width = len ? bytes[0] : 0;
    if ((width != 1 && width != 2 && width != 4 && width != 8) || (len - 1) % (4 + width)) {
        PyErr_SetString(PyExc_ValueError, "not packed sparse pairs (bad width or length)");
        return 0;
    }
    out->bytes = bytes;
    out->count = (len - 1) / (4 + width);
    out->width = width;
    out->held = bytes + 1 + 4 * out->count;
    return 1;
}

/* The first position in [lo, hi) whose index is >= `index` (every position before `lo` holds
 * a smaller one; `hi` if none in the range does). */
static inline Py_ssize_t lower_bound_in(const Packed *p, uint64_t index, Py_ssize_t lo,
                                        Py_ssize_t hi)
{
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (read_index(p->bytes + 1 + 4 * mid) < index)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The first position whose index is >= `index`. */
static inline Py_ssize_t lower_bound(const Packed *p, uint64_t index)
{
    return lower_bound_in(p, index, 0, p->count);
}

/* The value at `index` given its lower bound `at` (absent: 0). */
static inline uint64_t packed_value_at(const Packed *p, uint64_t index, Py_ssize_t at)
{
    if (at < p->count && read_index(p->bytes + 1 + 4 * at) == index)
        return read_value(p->held + (Py_ssize_t)p->width * at, p->width);
    return 0;
}

/* The value at `index` (absent: 0). */
static inline uint64_t packed_get(const Packed *p, uint64_t index)
{
    return packed_value_at(p, index, lower_bound(p, index));
}

/* packed_get for a run of look-ups that mostly rise (a Top-K call's slots: each bucket's three
 * in a row, its rows in order): a gallop forward from `*finger`, the position the previous
 * look-up ended at, when `index` lies at or past it, else a search from the start; `*finger`
 * is left at this look-up's position. The same answer as packed_get for any order. */
static inline uint64_t packed_get_from(const Packed *p, uint64_t index, Py_ssize_t *finger)
{
    Py_ssize_t lo = *finger, hi, step = 1;
    if (lo > p->count || (lo > 0 && read_index(p->bytes + 1 + 4 * (lo - 1)) >= index))
        lo = 0; /* (below the finger: every position before `lo` must hold a smaller index) */
    hi = lo;
    while (hi < p->count && read_index(p->bytes + 1 + 4 * hi) < index) {
        lo = hi + 1;
        hi += step;
        step <<= 1;
    }
    *finger = lower_bound_in(p, index, lo, hi < p->count ? hi : p->count);
    return packed_value_at(p, index, *finger);
}

#endif
