/* Reads and adds of a Bloom filter held as a bitset (see hearsay.sketch.bloom).
 *
 * A big filter (every filter past a few thousand set bits) is a vector in its bits form
 * (hearsay.lattice.vector): bit p is bit (p & 7) of byte (p >> 3); a bit past the end of the
 * array is unset. A BF.ADD of one item into a scaling chain reads up to a dozen sub-filters,
 * each until its first unset bit, after counting the chain's markers (bits 1, 2, ...). In
 * Python each bit cost about half a microsecond (the hash arithmetic on big ints, a numpy
 * scalar read); a chain of seven sub-filters spent ~15 us per BF.ADD reading bits. Here a
 * read of the whole chain is one call.
 *
 * Positions are RedisBloom's double hashing as hearsay.sketch.bloom computes them: the k-th
 * bit of a sub-filter (base, bits) for an item hashed (a, b) is base + ((a + k * b) mod 2**64)
 * mod bits. A sub-filter's geometry comes packed as three little-endian uint64 (base, bits,
 * hashes), one triple per sub-filter, oldest first. The Python reference is
 * BloomFilter._holds_bitwise and _chain_add_one's unset bits; the tests hold this to it.
 *
 * Many items at once (BF.MEXISTS, and BF.MADD / BF.INSERT's passes: holds_many, add_pass) read
 * the bits of a bitset or of a sparse vector's packed pairs, and take the items' hashes as one
 * array: a pass is BloomFilter._chain_add_few item for item (tests/sketch/test_bloom_add_pass.py
 * holds it to it), with no Python object per item. In Python an item cost ~8 us, and a
 * BF.MEXISTS of a million items into a chain of 11 sub-filters built 1 GB of positions in
 * arrays and held the node 24 s; here ~1-2 us an item (the bit reads' cache misses).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "../lattice/_bitset.h"
#include "../lattice/_packed_pairs.h"

#define UNSET_MAX 2048 /* hashes per sub-filter at most: a chain's first sub-filter has at most
                          * 1,075 (sketch.schemas) and each later one a hash more (its error
                          * halves), 64 sub-filters at most: 1,139. (It was 64, so a BF.ADD into
                          * the 58th sub-filter of an EXPANSION 1 chain of 1% error raised.) */

static uint64_t u64_at(const unsigned char *bytes)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | bytes[i];
    return v;
}

static int parse_u64(PyObject *obj, uint64_t *out)
{
    unsigned long long v = PyLong_AsUnsignedLongLong(obj);
    if (v == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    *out = (uint64_t)v;
    return 0;
}

static int read_buffer(PyObject *obj, Py_buffer *view)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_SIMPLE) < 0)
        return -1;
    return 0;
}

PyDoc_STRVAR(ones_doc,
             "ones(bits, start, limit, /) -> int\n\n"
             "How many bits from ``start`` on are set in a row, ``limit`` at most (a chain's "
             "markers: sub-filters in use).");

static PyObject *ones(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "ones(bits, start, limit)");
        return NULL;
    }
    uint64_t start, limit;
    if (parse_u64(args[1], &start) < 0 || parse_u64(args[2], &limit) < 0)
        return NULL;
    Py_buffer bits;
    if (read_buffer(args[0], &bits) < 0)
        return NULL;
    uint64_t n = 0;
    while (n < limit && bitset_bit(bits.buf, bits.len, start + n))
        n++;
    PyBuffer_Release(&bits);
    return PyLong_FromUnsignedLongLong(n);
}

/* -- many items at once: BF.MEXISTS, and BF.MADD / BF.INSERT's passes ------------------------ */

#define POSITION_LIMIT 0x100000000ull /* slots are below 2**32 (lattice.limits.INDEX_LIMIT) */

static uint64_t splitmix(uint64_t h)
{
    uint64_t z = h + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The filter's bits as the many-item reads take them: a bitset (a buffer), or a sparse
 * vector's packed pairs (bytes: a set bit is an index held, searched; a big filter is sparse
 * until ~3% of its bits are set, 34,000 items of a 1M-capacity one). */
typedef struct {
    Py_buffer view;
    int sparse;
    Packed packed;
} Source;

static int source_open(PyObject *obj, int sparse, Source *source)
{
    source->sparse = sparse;
    if (sparse && !packed_of(obj, &source->packed))
        return -1;
    return read_buffer(obj, &source->view);
}

static int source_bit(const Source *source, uint64_t position)
{
    if (!source->sparse)
        return bitset_bit(source->view.buf, source->view.len, position);
    return packed_get(&source->packed, position) != 0;
}

/* Bits set in [lo, hi): a sub-filter's fill. */
static uint64_t source_count(const Source *source, uint64_t lo, uint64_t hi)
{
    if (source->sparse)
        return (uint64_t)(lower_bound(&source->packed, hi) - lower_bound(&source->packed, lo));
    return bitset_count(source->view.buf, source->view.len, lo, hi);
}

static int holds_in(const Source *source, const unsigned char *shape, Py_ssize_t count,
                    uint64_t a, uint64_t b)
{
    for (Py_ssize_t link = count - 1; link >= 0; link--) {
        const unsigned char *at = shape + 24 * link;
        uint64_t base = u64_at(at), bits = u64_at(at + 8), hashes = u64_at(at + 16);
        if (bits == 0)
            continue;
        uint64_t k = 0;
        while (k < hashes && source_bit(source, base + (a + k * b) % bits))
            k++;
        if (k == hashes)
            return 1;
    }
    return 0;
}

/* Asks the cache for the first bit of an item (hashed ``a``) in each of ``count`` sub-filters
 * of a bitset, which holds_in will read: a few items ahead, so that the reads of several
 * items overlap (each item's are random lines of a filter bigger than the first caches). */
static void prefetch_item(const Source *source, const unsigned char *shape, Py_ssize_t count,
                          uint64_t a)
{
    if (source->sparse)
        return;
    for (Py_ssize_t link = 0; link < count; link++) {
        const unsigned char *at = shape + 24 * link;
        uint64_t base = u64_at(at), bits = u64_at(at + 8);
        if (bits == 0)
            continue;
        uint64_t byte = (base + a % bits) >> 3;
        if (byte < (uint64_t)source->view.len)
            __builtin_prefetch((const unsigned char *)source->view.buf + byte);
    }
}

/* And every bit of the item in one sub-filter (``link``): those an add reads for its unset
 * bits. */
static void prefetch_link(const Source *source, const unsigned char *link, uint64_t a)
{
    if (source->sparse)
        return;
    uint64_t base = u64_at(link), bits = u64_at(link + 8), hashes = u64_at(link + 16);
    uint64_t b = splitmix(a) | 1;
    for (uint64_t k = 0; k < hashes; k++) {
        uint64_t byte = (base + (a + k * b) % bits) >> 3;
        if (byte < (uint64_t)source->view.len)
            __builtin_prefetch((const unsigned char *)source->view.buf + byte);
    }
}

#define PREFETCH_AHEAD 4 /* items */

/* The items' hashes: a buffer of native uint64 (hashing.member_hashes). */
static int read_hashes(PyObject *obj, Py_buffer *view)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_SIMPLE) < 0)
        return -1;
    if (view->len % 8 != 0) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_ValueError, "hashes: 8 bytes an item");
        return -1;
    }
    return 0;
}

static int read_geometry(PyObject *obj, Py_buffer *view, Py_ssize_t *links)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_SIMPLE) < 0)
        return -1;
    if (view->len % 24 != 0) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_ValueError, "geometry: 24 bytes a sub-filter");
        return -1;
    }
    *links = view->len / 24;
    return 0;
}

/* The arguments every many-item call starts with: the filter's bits, whether they are packed
 * pairs, the items' hashes and the chain's geometry. */
typedef struct {
    Source source;
    Py_buffer hashes, geometry;
    Py_ssize_t links, items;
} Many;

static int many_open(PyObject *const *args, Many *many)
{
    int sparse = PyObject_IsTrue(args[1]);
    if (sparse < 0 || source_open(args[0], sparse, &many->source) < 0)
        return -1;
    if (read_hashes(args[2], &many->hashes) < 0) {
        PyBuffer_Release(&many->source.view);
        return -1;
    }
    if (read_geometry(args[3], &many->geometry, &many->links) < 0) {
        PyBuffer_Release(&many->source.view);
        PyBuffer_Release(&many->hashes);
        return -1;
    }
    many->items = many->hashes.len / 8;
    return 0;
}

static void many_close(Many *many)
{
    PyBuffer_Release(&many->source.view);
    PyBuffer_Release(&many->hashes);
    PyBuffer_Release(&many->geometry);
}

static uint64_t many_hash(const Many *many, Py_ssize_t i)
{
    uint64_t a;
    memcpy(&a, (const unsigned char *)many->hashes.buf + 8 * i, 8);
    return a;
}

PyDoc_STRVAR(holds_many_doc,
             "holds_many(bits, sparse, hashes, geometry, count, /) -> bytes\n\n"
             ":func:`holds` of every item (``hashes``: each item's ``a`` as native uint64; "
             "``b`` is its splitmix64 finalisation, forced odd): one byte an item, 1 when held. "
             "``sparse``: ``bits`` are a sparse vector's packed pairs, else a bitset.");

static PyObject *holds_many(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "holds_many(bits, sparse, hashes, geometry, count)");
        return NULL;
    }
    Py_ssize_t count = PyLong_AsSsize_t(args[4]);
    if (count == -1 && PyErr_Occurred())
        return NULL;
    Many many;
    if (many_open(args, &many) < 0)
        return NULL;
    PyObject *out = NULL;
    if (count < 0 || count > many.links) {
        PyErr_SetString(PyExc_ValueError, "count within the geometry");
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, many.items);
    if (out == NULL)
        goto done;
    unsigned char *flags = (unsigned char *)PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < many.items; i++) {
        uint64_t a = many_hash(&many, i);
        if (i + PREFETCH_AHEAD < many.items)
            prefetch_item(&many.source, many.geometry.buf, count,
                          many_hash(&many, i + PREFETCH_AHEAD));
        flags[i] = (unsigned char)holds_in(&many.source, many.geometry.buf, count, a,
                                           splitmix(a) | 1);
    }
done:
    many_close(&many);
    return out;
}

/* Sorts n positions below 2**32 in place (LSD radix, three 11-bit digits; ``scratch`` holds
 * n): a pass sets up to ~100,000 positions, which qsort's calls through a comparison
 * function took a fifth of a BF.MADD to order. */
static void sort_positions(uint64_t *values, uint64_t *scratch, size_t n)
{
    size_t counts[2048];
    uint64_t *from = values, *to = scratch;
    for (int shift = 0; shift < 33; shift += 11) {
        memset(counts, 0, sizeof counts);
        for (size_t i = 0; i < n; i++)
            counts[(from[i] >> shift) & 2047]++;
        size_t total = 0;
        for (size_t d = 0; d < 2048; d++) {
            size_t c = counts[d];
            counts[d] = total;
            total += c;
        }
        for (size_t i = 0; i < n; i++)
            to[counts[(from[i] >> shift) & 2047]++] = from[i];
        uint64_t *swap = from;
        from = to;
        to = swap;
    }
    if (from != values) /* (three passes: the result is in scratch) */
        memcpy(values, from, n * sizeof values[0]);
}

/* A set of positions: those in a window [lo, lo + span) as a bitmap, the others (a marker, a
 * new sub-filter's bits) in a small open-addressing table (positions are below 2**32, so ~0
 * marks a free slot). A pass adds nearly all its positions to the sub-filter it writes, which
 * is the window: a bit each, where a table of ~100,000 positions took a cache miss each. */
typedef struct {
    uint64_t *slots;
    size_t mask, count, used; /* count: positions held, window and table; used: the table's */
    uint64_t *window, lo, span;
} PositionSet;

#define FREE_SLOT UINT64_MAX
#define WINDOW_SPAN_MAX (1ull << 27) /* bits (16 MiB): a wider sub-filter keeps only the table */
#define WINDOW_WORDS_PER_POSITION 8 /* the bitmap's 64-bit words at most per position expected */

static int table_init(PositionSet *set, size_t capacity)
{
    size_t size = 64;
    while (size < 2 * capacity)
        size *= 2;
    set->slots = PyMem_Malloc(size * sizeof(uint64_t));
    if (set->slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memset(set->slots, 0xFF, size * sizeof(uint64_t));
    set->mask = size - 1;
    set->used = 0;
    return 0;
}

/* An empty set whose window is [lo, lo + span) (none when span is 0 or too wide). */
static int set_init(PositionSet *set, uint64_t lo, uint64_t span)
{
    set->count = 0;
    set->window = NULL;
    set->lo = lo;
    set->span = span <= WINDOW_SPAN_MAX ? span : 0;
    if (table_init(set, 32) < 0)
        return -1;
    if (set->span) {
        set->window = PyMem_Calloc((size_t)((set->span + 63) / 64), sizeof(uint64_t));
        if (set->window == NULL) {
            PyMem_Free(set->slots);
            PyErr_NoMemory();
            return -1;
        }
    }
    return 0;
}

static void set_free(PositionSet *set)
{
    PyMem_Free(set->slots);
    PyMem_Free(set->window);
}

static int in_window(const PositionSet *set, uint64_t position)
{
    return set->window != NULL && position >= set->lo && position - set->lo < set->span;
}

static size_t set_slot(const PositionSet *set, uint64_t position)
{
    size_t at = (size_t)((position * 0x9E3779B97F4A7C15ull) >> 20) & set->mask;
    while (set->slots[at] != FREE_SLOT && set->slots[at] != position)
        at = (at + 1) & set->mask;
    return at;
}

static int set_has(const PositionSet *set, uint64_t position)
{
    if (in_window(set, position)) {
        uint64_t bit = position - set->lo;
        return (int)((set->window[bit >> 6] >> (bit & 63)) & 1);
    }
    return set->slots[set_slot(set, position)] == position;
}

static int set_add(PositionSet *set, uint64_t position)
{
    if (in_window(set, position)) {
        uint64_t bit = position - set->lo, mask = 1ull << (bit & 63);
        if (!(set->window[bit >> 6] & mask)) {
            set->window[bit >> 6] |= mask;
            set->count++;
        }
        return 0;
    }
    if (2 * (set->used + 1) > set->mask + 1) {
        PositionSet grown = *set;
        if (table_init(&grown, 2 * (set->mask + 1)) < 0)
            return -1;
        for (size_t i = 0; i <= set->mask; i++)
            if (set->slots[i] != FREE_SLOT)
                grown.slots[set_slot(&grown, set->slots[i])] = set->slots[i];
        grown.used = set->used;
        PyMem_Free(set->slots);
        *set = grown;
    }
    size_t at = set_slot(set, position);
    if (set->slots[at] != position) {
        set->slots[at] = position;
        set->count++;
        set->used++;
    }
    return 0;
}

/* Every position held into ``out`` (room for set->count), ascending; how many. */
static size_t set_sorted(const PositionSet *set, uint64_t *out, uint64_t *scratch)
{
    size_t m = 0;
    for (size_t i = 0; i <= set->mask; i++)
        if (set->slots[i] != FREE_SLOT)
            out[m++] = set->slots[i];
    sort_positions(out, scratch, m); /* (the table's few: below and above the window) */
    size_t below = 0;
    while (below < m && out[below] < set->lo)
        below++;
    size_t above = m - below;
    memmove(scratch, out + below, above * sizeof(uint64_t));
    m = below;
    if (set->window != NULL) {
        for (uint64_t w = 0; w < (set->span + 63) / 64; w++) {
            uint64_t word = set->window[w];
            while (word) {
                out[m++] = set->lo + 64 * w + (uint64_t)__builtin_ctzll(word);
                word &= word - 1;
            }
        }
    }
    memcpy(out + m, scratch, above * sizeof(uint64_t));
    return m + above;
}

/* The item's positions in one sub-filter whose bits are unset (and, when ``pending`` is given,
 * not in it): sorted, each once; how many. */
static Py_ssize_t unset_in(const Source *source, const unsigned char *link, uint64_t a,
                           uint64_t b, const PositionSet *pending, uint64_t found[UNSET_MAX])
{
    uint64_t base = u64_at(link), bits = u64_at(link + 8), hashes = u64_at(link + 16);
    Py_ssize_t n = 0; /* (hashes <= UNSET_MAX and bits >= 1: the callers check) */
    for (uint64_t k = 0; k < hashes; k++) {
        uint64_t position = base + (a + k * b) % bits;
        if (!source_bit(source, position) && (pending == NULL || !set_has(pending, position)))
            found[n++] = position;
    }
    for (Py_ssize_t i = 1; i < n; i++) { /* (an item's few positions: insertion sort) */
        uint64_t v = found[i];
        Py_ssize_t j = i;
        for (; j > 0 && found[j - 1] > v; j--)
            found[j] = found[j - 1];
        found[j] = v;
    }
    Py_ssize_t kept = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (kept == 0 || found[i] != found[kept - 1])
            found[kept++] = found[i];
    return kept;
}

/* -- one item (BF.ADD / BF.EXISTS), on the same readers: a bitset ------------------------------ */

PyDoc_STRVAR(holds_doc,
             "holds(bits, a, b, geometry, count, /) -> bool\n\n"
             "Whether one of the first ``count`` sub-filters of ``geometry`` has every bit of "
             "the item hashed ``a``, ``b`` set in ``bits`` (newest first, each read until its "
             "first unset bit).");

static PyObject *holds(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "holds(bits, a, b, geometry, count)");
        return NULL;
    }
    uint64_t a, b;
    if (parse_u64(args[1], &a) < 0 || parse_u64(args[2], &b) < 0)
        return NULL;
    Py_ssize_t count = PyLong_AsSsize_t(args[4]);
    if (count == -1 && PyErr_Occurred())
        return NULL;
    Source source;
    Py_buffer geometry;
    if (source_open(args[0], 0, &source) < 0)
        return NULL;
    if (read_buffer(args[3], &geometry) < 0) {
        PyBuffer_Release(&source.view);
        return NULL;
    }
    int found = -1;
    if (geometry.len % 24 != 0 || count < 0 || count > geometry.len / 24)
        PyErr_SetString(PyExc_ValueError, "geometry: 24 bytes a sub-filter, count within it");
    else
        found = holds_in(&source, geometry.buf, count, a, b);
    PyBuffer_Release(&source.view);
    PyBuffer_Release(&geometry);
    return found < 0 ? NULL : PyBool_FromLong(found);
}

PyDoc_STRVAR(unset_doc,
             "unset(bits, a, b, base, size, hashes, /) -> list[int]\n\n"
             "The positions of the item hashed ``a``, ``b`` in the sub-filter (base, size, "
             "hashes) whose bits are unset in ``bits``: sorted, each once.");

static PyObject *unset(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "unset(bits, a, b, base, size, hashes)");
        return NULL;
    }
    uint64_t a, b, link[3]; /* base, size, hashes */
    if (parse_u64(args[1], &a) < 0 || parse_u64(args[2], &b) < 0 ||
        parse_u64(args[3], &link[0]) < 0 || parse_u64(args[4], &link[1]) < 0 ||
        parse_u64(args[5], &link[2]) < 0)
        return NULL;
    if (link[1] == 0 || link[2] > UNSET_MAX) {
        PyErr_SetString(PyExc_ValueError, "a sub-filter of 1 bit or more, 2048 hashes at most");
        return NULL;
    }
    unsigned char shape[24]; /* (the geometry's form: three little-endian uint64) */
    for (int i = 0; i < 24; i++)
        shape[i] = (unsigned char)(link[i / 8] >> (8 * (i % 8)));
    Source source;
    if (source_open(args[0], 0, &source) < 0)
        return NULL;
    uint64_t found[UNSET_MAX];
    Py_ssize_t n = unset_in(&source, shape, a, b, NULL, found);
    PyBuffer_Release(&source.view);
    PyObject *out = PyList_New(n);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *value = PyLong_FromUnsignedLongLong(found[i]);
        if (value == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, value);
    }
    return out;
}

PyDoc_STRVAR(add_pass_doc,
             "add_pass(bits, sparse, hashes, geometry, subs, reach, full, check_period, "
             "fill_bound, nonscaling, /) -> tuple[bytes, list[bool | None]]\n\n"
             "BloomFilter._chain_add_few over a chain's bits (``sparse``: a sparse vector's "
             "packed pairs, else a bitset), item after item: the "
             "positions to set (sorted little-endian uint32) and, per item answered, whether it "
             "was new (None: refused, the chain is full). It stops after an item that writes a "
             "marker, and before an item whose fill check would count bits of the items before "
             "it, as the Python does.");

static PyObject *add_pass(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 10) {
        PyErr_SetString(PyExc_TypeError,
                        "add_pass(bits, sparse, hashes, geometry, subs, reach, full, "
                        "check_period, fill_bound, nonscaling)");
        return NULL;
    }
    Py_ssize_t subs = PyLong_AsSsize_t(args[4]);
    Py_ssize_t reach = PyLong_AsSsize_t(args[5]);
    int full0 = PyObject_IsTrue(args[6]);
    uint64_t period;
    double bound = PyFloat_AsDouble(args[8]);
    int nonscaling = PyObject_IsTrue(args[9]);
    if (PyErr_Occurred() || full0 < 0 || nonscaling < 0 || parse_u64(args[7], &period) < 0)
        return NULL;
    Many many;
    if (many_open(args, &many) < 0)
        return NULL;
    Py_ssize_t links = many.links;
    PyObject *added = NULL, *written = NULL, *result = NULL;
    PositionSet pending = {0};
    uint64_t *sorted = NULL;
    if (subs < 1 || subs > links || reach < 0 || reach > links || period == 0) {
        PyErr_SetString(PyExc_ValueError, "subs and reach within the geometry, a period >= 1");
        goto done;
    }
    const unsigned char *shape = many.geometry.buf;
    for (Py_ssize_t link = 0; link < links; link++) {
        const unsigned char *at = shape + 24 * link;
        if (u64_at(at + 8) == 0 || u64_at(at + 16) > UNSET_MAX ||
            u64_at(at) + u64_at(at + 8) > POSITION_LIMIT) {
            PyErr_SetString(PyExc_ValueError,
                            "sub-filters of 1 bit or more, 2048 hashes at most, below 2**32");
            goto done;
        }
    }
    Py_ssize_t n = many.items;
    const unsigned char *cur_link = shape + 24 * (subs - 1);
    uint64_t cur_base = u64_at(cur_link), cur_bits = u64_at(cur_link + 8);
    /* The bitmap costs a zeroed allocation and a scan of the whole sub-filter: worth it when
     * the pass may set a fair share of its words' bits, never for a pipelined run of a few
     * BF.ADDs to a big filter (a 1M-capacity one's 1.2 MB a run took its rate from 44k to 22k a
     * second); the table then, whose cost follows the positions. */
    uint64_t expected = (uint64_t)n * u64_at(cur_link + 16);
    uint64_t span = cur_bits / 64 <= WINDOW_WORDS_PER_POSITION * expected ? cur_bits : 0;
    added = PyList_New(0);
    if (added == NULL || set_init(&pending, cur_base, span) < 0)
        goto done;
    int counted = 0;
    uint64_t fill = 0; /* set bits of sub-filter subs - 1 in ``bits`` (not pending): counted once */
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t a = many_hash(&many, i);
        uint64_t b = splitmix(a) | 1;
        if (i + PREFETCH_AHEAD < n) {
            uint64_t ahead = many_hash(&many, i + PREFETCH_AHEAD);
            prefetch_item(&many.source, shape, reach, ahead);
            prefetch_link(&many.source, cur_link, ahead);
        }
        if (holds_in(&many.source, shape, reach, a, b)) {
            if (PyList_Append(added, Py_False) < 0)
                goto done;
            continue;
        }
        int full = full0;
        const unsigned char *link = cur_link;
        uint64_t unset[UNSET_MAX];
        Py_ssize_t unset_count = -1; /* not read yet */
        if (pending.count) {
            unset_count = unset_in(&many.source, link, a, b, &pending, unset);
            if (unset_count == 0) {
                if (PyList_Append(added, Py_False) < 0)
                    goto done;
                continue;
            }
        }
        uint64_t marker = 0; /* a marker slot this item writes, 0: none */
        if (!full && (a >> 32) % period == 0) {
            if (!counted) {
                fill = source_count(&many.source, cur_base, cur_base + cur_bits);
                counted = 1;
            }
            if ((double)(fill + pending.count) >= bound) {
                if (pending.count)
                    break; /* its check would count the items before it: the next pass */
                if (nonscaling) {
                    marker = 1;
                    full = 1;
                } else if (subs == links) {
                    full = 1;
                } else {
                    marker = (uint64_t)subs;
                    link = shape + 24 * subs;
                }
            }
        }
        if (marker && set_add(&pending, marker) < 0)
            goto done;
        if (full) {
            if (PyList_Append(added, Py_None) < 0)
                goto done;
            if (marker)
                break;
            continue;
        }
        if (unset_count < 0)
            unset_count = unset_in(&many.source, link, a, b, NULL, unset);
        for (Py_ssize_t k = 0; k < unset_count; k++)
            if (set_add(&pending, unset[k]) < 0)
                goto done;
        if (PyList_Append(added, Py_True) < 0)
            goto done;
        if (marker)
            break; /* a new sub-filter: the next pass reads the chain again */
    }
    sorted = PyMem_Malloc(2 * (pending.count ? pending.count : 1) * sizeof(uint64_t));
    if (sorted == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    size_t m = set_sorted(&pending, sorted, sorted + pending.count);
    written = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(4 * m));
    if (written == NULL)
        goto done;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(written);
    for (size_t i = 0; i < m; i++) {
        uint32_t v = (uint32_t)sorted[i];
        out[4 * i] = (unsigned char)v;
        out[4 * i + 1] = (unsigned char)(v >> 8);
        out[4 * i + 2] = (unsigned char)(v >> 16);
        out[4 * i + 3] = (unsigned char)(v >> 24);
    }
    result = PyTuple_Pack(2, written, added);
done:
    Py_XDECREF(written);
    Py_XDECREF(added);
    PyMem_Free(sorted);
    set_free(&pending);
    many_close(&many);
    return result;
}

static PyMethodDef methods[] = {
    {"holds", (PyCFunction)(void (*)(void))holds, METH_FASTCALL, holds_doc},
    {"unset", (PyCFunction)(void (*)(void))unset, METH_FASTCALL, unset_doc},
    {"ones", (PyCFunction)(void (*)(void))ones, METH_FASTCALL, ones_doc},
    {"holds_many", (PyCFunction)(void (*)(void))holds_many, METH_FASTCALL, holds_many_doc},
    {"add_pass", (PyCFunction)(void (*)(void))add_pass, METH_FASTCALL, add_pass_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "hearsay.sketch._bloombits",
    "One item's reads of a Bloom filter held as a bitset.",
    0,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__bloombits(void)
{
    return PyModuleDef_Init(&module);
}
