/* A few pairs merged into a sparse max-vector's packed pairs, in one pass and one copy; and
 * the values at a few indices of them, a binary search each.
 *
 * The packed form (hearsay.lattice.vector): one byte `w` (value width 1, 2, 4 or 8), then n
 * little-endian uint32 indices (sorted, distinct), then n little-endian values of w bytes.
 *
 * Why C: a Top-K write raises a couple of dozen slots of a slice of a few hundred pairs. The
 * numpy merge costs some thirty array calls whatever the size, the pure-Python few-pairs path
 * a bisect and two slices a pair; here it is a sort of the few pairs and one walk. The Python
 * reference is MaxVector's general merge (normalize_pairs, then _merge_tracking); the tests
 * hold this to it. Input it does not take (not exact ints, out of range, unequal lengths) is
 * left to that path, which raises the errors.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_bitset.h"
#include "_packed_pairs.h"
#include "_sixbit_slots.h"

#define PAIRS_MAX 64
#define VALUE_MAX ((uint64_t)INT64_MAX)

typedef struct {
    uint64_t index;
    uint64_t value;
} Pair;

static int by_index(const void *a, const void *b)
{
    const Pair *x = a, *y = b;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* The pairs sorted by index, each index once with its largest value; how many are left. */
static Py_ssize_t sorted_maxima(Pair *pairs, Py_ssize_t n)
{
    qsort(pairs, (size_t)n, sizeof(Pair), by_index);
    Py_ssize_t kept = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (kept && pairs[kept - 1].index == pairs[i].index) {
            if (pairs[i].value > pairs[kept - 1].value)
                pairs[kept - 1].value = pairs[i].value;
        } else {
            pairs[kept++] = pairs[i];
        }
    }
    return kept;
}

static int width_for(uint64_t value_max)
{
    if (value_max < ((uint64_t)1 << 8))
        return 1;
    if (value_max < ((uint64_t)1 << 16))
        return 2;
    if (value_max < ((uint64_t)1 << 32))
        return 4;
    return 8;
}

static void write_index(unsigned char *at, uint64_t index)
{
    for (int b = 0; b < 4; b++)
        at[b] = (unsigned char)(index >> (8 * b));
}

static void write_value(unsigned char *at, uint64_t value, int width)
{
    for (int b = 0; b < width; b++)
        at[b] = (unsigned char)(value >> (8 * b));
}

/* Pairs packed as _from_few packs them: the narrowest width for their largest value. */
static PyObject *pack_pairs(const Pair *pairs, Py_ssize_t n)
{
    uint64_t top = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (pairs[i].value > top)
            top = pairs[i].value;
    int width = width_for(top);
    PyObject *out = PyBytes_FromStringAndSize(NULL, 1 + n * (4 + width));
    if (out == NULL)
        return NULL;
    unsigned char *bytes = (unsigned char *)PyBytes_AS_STRING(out);
    bytes[0] = (unsigned char)width;
    for (Py_ssize_t i = 0; i < n; i++) {
        write_index(bytes + 1 + 4 * i, pairs[i].index);
        write_value(bytes + 1 + 4 * n + width * i, pairs[i].value, width);
    }
    return out;
}

/* An exact int in 0..limit into *out; 0 (no exception) when it is not one. */
static int bounded(PyObject *obj, uint64_t limit, uint64_t *out)
{
    if (!PyLong_CheckExact(obj))
        return 0;
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow || (v == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    if (v < 0 || (uint64_t)v > limit)
        return 0;
    *out = (uint64_t)v;
    return 1;
}

/* Validated, sorted, deduplicated (each index's largest value), zeros dropped: the pairs a
 * merge wants. 0 (no exception) when the input is not for the C paths. */
static int wanted_pairs(PyObject *indices, PyObject *values, Pair *wanted, Py_ssize_t *unique)
{
    Py_ssize_t given = PyList_GET_SIZE(indices);
    if (given != PyList_GET_SIZE(values) || given > PAIRS_MAX)
        return 0;
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < given; i++) {
        Pair p;
        if (!bounded(PyList_GET_ITEM(indices, i), UINT32_MAX, &p.index) ||
            !bounded(PyList_GET_ITEM(values, i), VALUE_MAX, &p.value))
            return 0;
        if (p.value)
            wanted[n++] = p;
    }
    *unique = sorted_maxima(wanted, n);
    return 1;
}

PyDoc_STRVAR(merge_few_doc,
             "merge_few(packed, indices, values, /)\n"
             "A few pairs merged into packed sparse pairs by element-wise max: (packed after,\n"
             "delta, previous) as packed pairs (None for none), or None for input it leaves to\n"
             "the general path.");

static PyObject *merge_few(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "merge_few() takes 3 positional arguments, got %zd",
                     nargs);
        return NULL;
    }
    PyObject *packed = args[0], *indices = args[1], *values = args[2];
    if (!PyBytes_Check(packed) || !PyList_Check(indices) || !PyList_Check(values)) {
        PyErr_SetString(PyExc_TypeError, "merge_few(bytes, list, list)");
        return NULL;
    }
    Py_ssize_t len = PyBytes_GET_SIZE(packed);
    const unsigned char *old = (const unsigned char *)PyBytes_AS_STRING(packed);
    int old_width = len ? old[0] : 0;
    if ((old_width != 1 && old_width != 2 && old_width != 4 && old_width != 8) ||
        (len - 1) % (4 + old_width))
        Py_RETURN_NONE;
    Py_ssize_t count = (len - 1) / (4 + old_width);
    const unsigned char *old_values = old + 1 + 4 * count;

    Pair wanted[PAIRS_MAX];
    Py_ssize_t unique = 0;
    if (!wanted_pairs(indices, values, wanted, &unique))
        Py_RETURN_NONE;

    /* Which rise: a binary search each, from where the previous one was found. */
    Pair grown[PAIRS_MAX], before[PAIRS_MAX];
    Py_ssize_t where[PAIRS_MAX]; /* position in the old pairs */
    int present[PAIRS_MAX];
    Py_ssize_t grew = 0, had = 0, inserted = 0, lo = 0;
    uint64_t grown_top = 0;
    for (Py_ssize_t i = 0; i < unique; i++) {
        Py_ssize_t hi = count;
        while (lo < hi) {
            Py_ssize_t mid = lo + (hi - lo) / 2;
            if (read_index(old + 1 + 4 * mid) < wanted[i].index)
                lo = mid + 1;
            else
                hi = mid;
        }
        int found = lo < count && read_index(old + 1 + 4 * lo) == wanted[i].index;
        uint64_t current = found ? read_value(old_values + old_width * lo, old_width) : 0;
        if (wanted[i].value <= current)
            continue;
        grown[grew] = wanted[i];
        where[grew] = lo;
        present[grew] = found;
        grew++;
        if (wanted[i].value > grown_top)
            grown_top = wanted[i].value;
        if (found)
            before[had++] = (Pair){wanted[i].index, current};
        else
            inserted++;
    }
    if (grew == 0)
        return Py_BuildValue("(OOO)", Py_None, Py_None, Py_None);

    /* The new packed pairs: old and grown merged in one walk (never narrower than before). */
    int width = width_for(grown_top);
    if (width < old_width)
        width = old_width;
    Py_ssize_t total = count + inserted;
    PyObject *after = PyBytes_FromStringAndSize(NULL, 1 + total * (4 + width));
    if (after == NULL)
        return NULL;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(after);
    out[0] = (unsigned char)width;
    unsigned char *out_values = out + 1 + 4 * total;
    Py_ssize_t from = 0, to = 0;
    for (Py_ssize_t g = 0; g <= grew; g++) {
        Py_ssize_t until = g < grew ? where[g] : count;
        if (width == old_width) {
            memcpy(out + 1 + 4 * to, old + 1 + 4 * from, (size_t)(4 * (until - from)));
            memcpy(out_values + width * to, old_values + old_width * from,
                   (size_t)(width * (until - from)));
            to += until - from;
        } else {
            for (Py_ssize_t i = from; i < until; i++, to++) {
                memcpy(out + 1 + 4 * to, old + 1 + 4 * i, 4);
                write_value(out_values + width * to,
                            read_value(old_values + old_width * i, old_width), width);
            }
        }
        from = until;
        if (g == grew)
            break;
        write_index(out + 1 + 4 * to, grown[g].index);
        write_value(out_values + width * to, grown[g].value, width);
        to++;
        if (present[g])
            from++; /* (the old pair is replaced) */
    }
    PyObject *delta = pack_pairs(grown, grew);
    PyObject *previous = had ? pack_pairs(before, had) : Py_NewRef(Py_None);
    if (delta == NULL || previous == NULL) {
        Py_DECREF(after);
        Py_XDECREF(delta);
        Py_XDECREF(previous);
        return NULL;
    }
    return Py_BuildValue("(NNN)", after, delta, previous);
}

#define FORM_BITS 0
#define FORM_SIX 6

static uint64_t dense_read(const uint8_t *at, int form, Py_ssize_t i)
{
    switch (form) {
    case FORM_BITS:
        return at[i >> 3] >> (i & 7) & 1;
    case FORM_SIX:
        return get_slot(at, i);
    default:
        return read_value(at + (Py_ssize_t)form * i, form);
    }
}

/* A dense form argument (0 bits, 6 six-bit slots, 1/2/4/8 bytes a slot) into `form`; 0 and
 * an exception for anything else. */
static int dense_form(PyObject *obj, long *form)
{
    *form = PyLong_AsLong(obj);
    if (*form == -1 && PyErr_Occurred())
        return 0;
    if (*form != FORM_BITS && *form != FORM_SIX && *form != 1 && *form != 2 && *form != 4 &&
        *form != 8) {
        PyErr_Format(PyExc_ValueError, "no dense form %ld", *form);
        return 0;
    }
    return 1;
}

/* The slots a dense buffer of `bytes` holds in `form`. */
static Py_ssize_t dense_slots(Py_ssize_t bytes, long form)
{
    return form == FORM_BITS ? bytes * 8 : form == FORM_SIX ? bytes / 3 * 4 : bytes / form;
}

static void dense_write(uint8_t *at, int form, Py_ssize_t i, uint64_t value)
{
    switch (form) {
    case FORM_BITS:
        at[i >> 3] |= (uint8_t)(1u << (i & 7));
        break;
    case FORM_SIX:
        set_slot(at, i, (unsigned)value);
        break;
    default:
        write_value(at + (Py_ssize_t)form * i, value, form);
    }
}

PyDoc_STRVAR(merge_few_dense_doc,
             "merge_few_dense(dense, form, indices, values, /)\n"
             "A few pairs merged in place into a dense vector's writable buffer by element-wise\n"
             "max: (delta, previous) as packed pairs (None for none), or None for input it leaves\n"
             "to the general path. form: 0 bits, 6 six-bit slots, 1/2/4/8 bytes per slot.");

static PyObject *merge_few_dense(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "merge_few_dense() takes 4 positional arguments, got %zd",
                     nargs);
        return NULL;
    }
    PyObject *indices = args[2], *values = args[3];
    long form;
    if (!dense_form(args[1], &form))
        return NULL;
    if (!PyList_Check(indices) || !PyList_Check(values)) {
        PyErr_SetString(PyExc_TypeError, "merge_few_dense(buffer, int, list, list)");
        return NULL;
    }
    Pair wanted[PAIRS_MAX];
    Py_ssize_t unique = 0;
    if (!wanted_pairs(indices, values, wanted, &unique))
        Py_RETURN_NONE;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    Py_ssize_t slots = dense_slots(view.len, form);
    uint64_t top = form == FORM_BITS  ? 1
                   : form == FORM_SIX ? SIX_MAX
                   : form == 8        ? VALUE_MAX
                                      : ((uint64_t)1 << (8 * form)) - 1;
    for (Py_ssize_t i = 0; i < unique; i++) {
        if (wanted[i].index >= (uint64_t)slots || wanted[i].value > top) {
            PyBuffer_Release(&view);
            Py_RETURN_NONE; /* (beyond the array or too wide for it: the general path) */
        }
    }
    uint8_t *at = view.buf;
    Pair grown[PAIRS_MAX], before[PAIRS_MAX];
    Py_ssize_t grew = 0, had = 0;
    for (Py_ssize_t i = 0; i < unique; i++) {
        Py_ssize_t slot = (Py_ssize_t)wanted[i].index;
        uint64_t current = dense_read(at, (int)form, slot);
        if (wanted[i].value <= current)
            continue;
        dense_write(at, (int)form, slot, wanted[i].value);
        grown[grew++] = wanted[i];
        if (current)
            before[had++] = (Pair){wanted[i].index, current};
    }
    PyBuffer_Release(&view);
    if (grew == 0)
        return Py_BuildValue("(OO)", Py_None, Py_None);
    PyObject *delta = pack_pairs(grown, grew);
    PyObject *previous = had ? pack_pairs(before, had) : Py_NewRef(Py_None);
    if (delta == NULL || previous == NULL) {
        Py_XDECREF(delta);
        Py_XDECREF(previous);
        return NULL;
    }
    return Py_BuildValue("(NN)", delta, previous);
}

PyDoc_STRVAR(values_dense_doc,
             "values_dense(dense, form, indices, /)\n"
             "The value at each index of a dense vector's buffer (past its slots: 0). form as\n"
             "merge_few_dense's.");

/* values_dense(dense, form, indices) -> list[int]: MaxVector.values_of on a dense vector (a
 * t-digest's header, a count-min item's cells) without a Python call and a numpy scalar for
 * each slot. */
static PyObject *values_dense(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "values_dense() takes 3 positional arguments, got %zd",
                     nargs);
        return NULL;
    }
    PyObject *indices = args[2];
    long form;
    if (!dense_form(args[1], &form))
        return NULL;
    if (!PyList_Check(indices)) {
        PyErr_SetString(PyExc_TypeError, "indices must be a list of ints");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    Py_ssize_t slots = dense_slots(view.len, form);
    Py_ssize_t n = PyList_GET_SIZE(indices);
    PyObject *out = PyList_New(n);
    if (out == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        unsigned long long index = PyLong_AsUnsignedLongLong(PyList_GET_ITEM(indices, k));
        if (index == (unsigned long long)-1 && PyErr_Occurred()) {
            PyBuffer_Release(&view);
            Py_DECREF(out);
            return NULL;
        }
        uint64_t v = index < (unsigned long long)slots
                         ? dense_read(view.buf, (int)form, (Py_ssize_t)index)
                         : 0;
        PyObject *value = PyLong_FromUnsignedLongLong(v);
        if (value == NULL) {
            PyBuffer_Release(&view);
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, k, value);
    }
    PyBuffer_Release(&view);
    return out;
}

PyDoc_STRVAR(values_doc,
             "values(packed, indices, /)\n"
             "The value at each index of packed sparse pairs (absent: 0).");

/* values(packed: bytes, indices: list[int]) -> list[int]: what MaxVector.values_at gives, for
 * a few dozen look-ups (a Top-K write reads its list headers and its items' buckets; a read of
 * one register, MaxVector.get) at a binary search each, without numpy's per-call costs. */
static PyObject *values(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "values() takes 2 positional arguments, got %zd", nargs);
        return NULL;
    }
    PyObject *indices = args[1];
    Packed p;
    if (!packed_of(args[0], &p))
        return NULL;
    if (!PyList_Check(indices)) {
        PyErr_SetString(PyExc_TypeError, "indices must be a list of ints");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(indices);
    PyObject *out = PyList_New(n);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t k = 0; k < n; k++) {
        unsigned long long index = PyLong_AsUnsignedLongLong(PyList_GET_ITEM(indices, k));
        if (index == (unsigned long long)-1 && PyErr_Occurred()) {
            Py_DECREF(out);
            return NULL;
        }
        PyObject *value = PyLong_FromUnsignedLongLong(packed_get(&p, index));
        if (value == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, k, value);
    }
    return out;
}

PyDoc_STRVAR(window_doc,
             "window(packed, low, high, /)\n"
             "The (index, value) pairs of packed sparse pairs with low <= index < high.");

/* window(packed, low, high) -> list[tuple[int, int]]: MaxVector.window's pairs, a binary search
 * and a walk (a cuckoo filter reads a bucket's 512 slots at a time). */
static PyObject *window(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "window() takes 3 positional arguments, got %zd", nargs);
        return NULL;
    }
    Packed p;
    if (!packed_of(args[0], &p))
        return NULL;
    unsigned long long low = PyLong_AsUnsignedLongLong(args[1]);
    if (low == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    unsigned long long high = PyLong_AsUnsignedLongLong(args[2]);
    if (high == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t i = lower_bound(&p, low); i < p.count; i++) {
        uint64_t index = read_index(p.bytes + 1 + 4 * i);
        if (index >= high)
            break;
        uint64_t v = read_value(p.held + (Py_ssize_t)p.width * i, p.width);
        PyObject *pair = Py_BuildValue("(KK)", (unsigned long long)index, (unsigned long long)v);
        if (pair == NULL || PyList_Append(out, pair) < 0) {
            Py_XDECREF(pair);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(pair);
    }
    return out;
}

/* checked_pairs' work on raw buffers: (indices, values) lists, Py_None (a new reference) when
 * the pairs are not already in packed form, NULL with an exception on a memory error. */
static PyObject *few_lists(long width, const unsigned char *at, Py_ssize_t index_bytes,
                           const unsigned char *held, Py_ssize_t value_bytes,
                           unsigned long long size)
{
    if (width != 1 && width != 2 && width != 4 && width != 8)
        Py_RETURN_NONE;
    Py_ssize_t count = value_bytes / width;
    if (count < 1 || count > PAIRS_MAX || value_bytes != count * width ||
        index_bytes != 4 * count)
        Py_RETURN_NONE;
    uint64_t top = 0;
    for (Py_ssize_t k = 0; k < count; k++) {
        uint64_t index = read_index(at + 4 * k);
        uint64_t value = read_value(held + width * k, (int)width);
        if (index >= size || value == 0 || value > VALUE_MAX ||
            (k && index <= read_index(at + 4 * (k - 1))))
            Py_RETURN_NONE;
        if (value > top)
            top = value;
    }
    if (width_for(top) != width)
        Py_RETURN_NONE;
    PyObject *indices = PyList_New(count);
    PyObject *values = PyList_New(count);
    if (indices == NULL || values == NULL)
        goto fail;
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *index = PyLong_FromUnsignedLong(read_index(at + 4 * k));
        if (index == NULL)
            goto fail;
        PyList_SET_ITEM(indices, k, index);
        PyObject *value =
            PyLong_FromUnsignedLongLong(read_value(held + width * k, (int)width));
        if (value == NULL)
            goto fail;
        PyList_SET_ITEM(values, k, value);
    }
    return Py_BuildValue("(NN)", indices, values);
fail:
    Py_XDECREF(indices);
    Py_XDECREF(values);
    return NULL;
}

PyDoc_STRVAR(checked_pairs_doc,
             "checked_pairs(width, indices, values, size, /)\n"
             "A slice's few pairs as they came on the wire, as two lists of ints, when they are\n"
             "already in packed form; None otherwise.");

/* checked_pairs(width, indices: bytes, values: bytes, size) -> (list[int], list[int]) | None:
 * the pairs of a replicated write's slice (little-endian uint32 indices, values of `width`
 * bytes) when they are already what the packed form holds: at least one, indices rising and
 * below `size`, values non-zero, at most 2**63-1 and `width` the narrowest width for their
 * largest. None for anything else (the general decode normalizes or refuses it). What
 * codec._few_pair_lists did with two struct.unpack calls and four passes in Python: a receiver
 * decodes every replicated write's pairs, 6-19 of them for a TOPK.ADD. */
static PyObject *checked_pairs(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "checked_pairs() takes 4 positional arguments, got %zd",
                     nargs);
        return NULL;
    }
    long width = PyLong_AsLong(args[0]);
    if (width == -1 && PyErr_Occurred())
        return NULL;
    if (!PyBytes_Check(args[1]) || !PyBytes_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "indices and values must be bytes");
        return NULL;
    }
    unsigned long long size = PyLong_AsUnsignedLongLong(args[3]);
    if (size == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    return few_lists(width, (const unsigned char *)PyBytes_AS_STRING(args[1]),
                     PyBytes_GET_SIZE(args[1]), (const unsigned char *)PyBytes_AS_STRING(args[2]),
                     PyBytes_GET_SIZE(args[2]), size);
}


/* msgpack headers, as msgpack.packb(..., use_bin_type=True) writes them. */
static unsigned char *put_array_header(unsigned char *at, Py_ssize_t n)
{
    if (n < 16) {
        *at++ = (unsigned char)(0x90 | n);
    } else if (n < 65536) {
        *at++ = 0xdc;
        *at++ = (unsigned char)(n >> 8);
        *at++ = (unsigned char)n;
    } else {
        *at++ = 0xdd;
        for (int shift = 24; shift >= 0; shift -= 8)
            *at++ = (unsigned char)(n >> shift);
    }
    return at;
}

static unsigned char *put_bin_header(unsigned char *at, Py_ssize_t n)
{
    if (n < 256) {
        *at++ = 0xc4;
        *at++ = (unsigned char)n;
    } else if (n < 65536) {
        *at++ = 0xc5;
        *at++ = (unsigned char)(n >> 8);
        *at++ = (unsigned char)n;
    } else {
        *at++ = 0xc6;
        for (int shift = 24; shift >= 0; shift -= 8)
            *at++ = (unsigned char)(n >> shift);
    }
    return at;
}

static unsigned char *put_bin(unsigned char *at, const char *data, Py_ssize_t n)
{
    at = put_bin_header(at, n);
    memcpy(at, data, (size_t)n);
    return at + n;
}

static unsigned char *put_str(unsigned char *at, const char *data, Py_ssize_t n)
{
    if (n < 32) {
        *at++ = (unsigned char)(0xa0 | n);
    } else if (n < 256) {
        *at++ = 0xd9;
        *at++ = (unsigned char)n;
    } else if (n < 65536) {
        *at++ = 0xda;
        *at++ = (unsigned char)(n >> 8);
        *at++ = (unsigned char)n;
    } else {
        *at++ = 0xdb;
        for (int shift = 24; shift >= 0; shift -= 8)
            *at++ = (unsigned char)(n >> shift);
    }
    memcpy(at, data, (size_t)n);
    return at + n;
}

/* A slice argument of push_item and entry_bytes, (origin str, packed pairs bytes): its origin
 * in UTF-8 (its length in *origin_bytes) and its packed bytes in *packed (borrowed); NULL with
 * TypeError set when it is not one. */
static const char *slice_parts(PyObject *slice, Py_ssize_t *origin_bytes, PyObject **packed)
{
    if (!PyTuple_Check(slice) || PyTuple_GET_SIZE(slice) != 2 ||
        !PyUnicode_Check(PyTuple_GET_ITEM(slice, 0)) ||
        !PyBytes_Check(PyTuple_GET_ITEM(slice, 1))) {
        PyErr_SetString(PyExc_TypeError, "a slice must be (origin str, packed bytes)");
        return NULL;
    }
    *packed = PyTuple_GET_ITEM(slice, 1);
    return PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(slice, 0), origin_bytes);
}

PyDoc_STRVAR(push_item_doc,
             "push_item(key, head, slices, full, /) -> bytes | None\n\n"
             "A PUSH item of an entry whose slices are all a few packed pairs.");

/* push_item(key, head, slices, full): the msgpack bytes of the PUSH item
 * [key, [head..., [[origin, width, indices, values], ...]], full], where `head` is the packed
 * four fields before the slices (format, epoch, schema, expiry; no array header) and `slices`
 * a list of (origin str, packed pairs bytes), each cut into its indices and values as
 * messages.entry_wire does. None when a slice holds no pair or more than PAIRS_MAX (the caller
 * encodes the entry whole). The same bytes as msgpack.packb of that list: a drain encodes one
 * item per key it pushes, and building the nested lists to pack cost ~1.5 us a key. */
static PyObject *push_item(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "push_item() takes 4 positional arguments, got %zd", nargs);
        return NULL;
    }
    PyObject *key = args[0], *head = args[1], *slices = args[2];
    if (!PyBytes_Check(key) || !PyBytes_Check(head) || !PyList_Check(slices)) {
        PyErr_SetString(PyExc_TypeError, "key and head must be bytes, slices a list");
        return NULL;
    }
    int full = PyObject_IsTrue(args[3]);
    if (full < 0)
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(slices);
    /* headers: item 1, key bin 5, entry array 1, slices array 5, bool 1; per slice: array 1,
     * str header 5, width 1, two bin headers 10 */
    Py_ssize_t size = 13 + PyBytes_GET_SIZE(key) + PyBytes_GET_SIZE(head);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t origin_bytes;
        PyObject *packed;
        if (slice_parts(PyList_GET_ITEM(slices, i), &origin_bytes, &packed) == NULL)
            return NULL;
        Py_ssize_t packed_bytes = PyBytes_GET_SIZE(packed);
        if (packed_bytes < 1)
            Py_RETURN_NONE;
        int width = (unsigned char)PyBytes_AS_STRING(packed)[0];
        Py_ssize_t count = (packed_bytes - 1) / (4 + width);
        if (count < 1 || count > PAIRS_MAX || width > 127)
            Py_RETURN_NONE;
        size += 17 + origin_bytes + packed_bytes - 1;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL)
        return NULL;
    unsigned char *start = (unsigned char *)PyBytes_AS_STRING(out);
    unsigned char *at = start;
    *at++ = 0x93;
    at = put_bin(at, PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key));
    *at++ = 0x95;
    memcpy(at, PyBytes_AS_STRING(head), (size_t)PyBytes_GET_SIZE(head));
    at += PyBytes_GET_SIZE(head);
    at = put_array_header(at, n);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t origin_bytes;
        PyObject *packed;
        const char *origin = slice_parts(PyList_GET_ITEM(slices, i), &origin_bytes, &packed);
        const char *bytes = PyBytes_AS_STRING(packed);
        Py_ssize_t packed_bytes = PyBytes_GET_SIZE(packed);
        int width = (unsigned char)bytes[0];
        Py_ssize_t count = (packed_bytes - 1) / (4 + width);
        *at++ = 0x94;
        at = put_str(at, origin, origin_bytes);
        *at++ = (unsigned char)width; /* a positive fixint: width <= 127 */
        at = put_bin(at, bytes + 1, 4 * count);
        at = put_bin(at, bytes + 1 + 4 * count, packed_bytes - 1 - 4 * count);
    }
    *at++ = full ? 0xc3 : 0xc2;
    if (_PyBytes_Resize(&out, at - start) < 0)
        return NULL;
    return out;
}

/* A non-negative integer as msgpack.packb writes it (the smallest unsigned form). */
static unsigned char *put_uint(unsigned char *at, uint64_t value)
{
    if (value < 128) {
        *at++ = (unsigned char)value;
    } else if (value < 256) {
        *at++ = 0xcc;
        *at++ = (unsigned char)value;
    } else if (value < 65536) {
        *at++ = 0xcd;
        *at++ = (unsigned char)(value >> 8);
        *at++ = (unsigned char)value;
    } else if (value <= 0xffffffffu) {
        *at++ = 0xce;
        for (int shift = 24; shift >= 0; shift -= 8)
            *at++ = (unsigned char)(value >> shift);
    } else {
        *at++ = 0xcf;
        for (int shift = 56; shift >= 0; shift -= 8)
            *at++ = (unsigned char)(value >> shift);
    }
    return at;
}

/* The canonical form of one slice's packed pairs, as codec._packed_to_wire chooses it: a bit
 * run (width 1, every value 1, fewer bytes than the pairs would take at five a pair), else a
 * dense run (fewer bytes than the pairs at 4 + width a pair), else the pairs cut in two. */
typedef struct {
    int form; /* 0 bit run, 1 dense run, 2 sparse */
    int width;
    Py_ssize_t count;
    uint32_t first, last;
    Py_ssize_t body; /* bytes of its payload bin(s) */
} SliceForm;

static int slice_form(const unsigned char *packed, Py_ssize_t size, SliceForm *form)
{
    if (size < 1)
        return 0;
    int width = packed[0];
    if (width != 1 && width != 2 && width != 4 && width != 8)
        return 0;
    Py_ssize_t count = (size - 1) / (4 + width);
    if (count < 1 || 1 + count * (4 + width) != size)
        return 0;
    const unsigned char *indices = packed + 1, *values = packed + 1 + 4 * count;
    uint32_t first = read_index(indices), last = read_index(indices + 4 * (count - 1));
    if (last < first)
        return 0;
    form->width = width;
    form->count = count;
    form->first = first;
    form->last = last;
    uint64_t bit_bytes = (uint64_t)(last / 8) - (uint64_t)(first / 8) + 1;
    if (width == 1 && bit_bytes < (uint64_t)count * 5) {
        int all_one = 1;
        for (Py_ssize_t i = 0; i < count; i++)
            if (values[i] != 1) {
                all_one = 0;
                break;
            }
        if (all_one) {
            form->form = 0;
            form->body = (Py_ssize_t)bit_bytes;
            return 1;
        }
    }
    uint64_t span = (uint64_t)last - first + 1;
    if (span * (uint64_t)width < (uint64_t)count * (4 + width)) {
        form->form = 1;
        form->body = (Py_ssize_t)(span * (uint64_t)width);
        return 1;
    }
    form->form = 2;
    form->body = size - 1;
    return 1;
}

PyDoc_STRVAR(entry_bytes_doc,
             "entry_bytes(head, slices, /) -> bytes | None\n\n"
             "An entry's canonical bytes from its head fields and packed slices.");

/* entry_bytes(head, slices): codec.encode_entry of an entry whose slices are all sparse:
 * msgpack's bytes of [head..., [slice, ...]], where `head` is the packed four fields before the
 * slices (format, epoch, schema, expiry; no array header) and `slices` a list of (origin str,
 * packed pairs bytes) in origin order, each in the canonical form codec._packed_to_wire picks
 * (see slice_form). None when a slice is empty or malformed (the caller encodes in Python). A
 * node encodes every changed key at each storage flush: the nested lists msgpack packs cost
 * ~5 us a small key in Python. */
static PyObject *entry_bytes(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "entry_bytes() takes 2 positional arguments, got %zd",
                     nargs);
        return NULL;
    }
    PyObject *head = args[0], *slices = args[1];
    if (!PyBytes_Check(head) || !PyList_Check(slices)) {
        PyErr_SetString(PyExc_TypeError, "head must be bytes, slices a list");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(slices);
    /* headers: entry array 1, slices array 5; per slice: array 1, str header 5, width 1,
     * start or bin header 9, bin header 5 */
    Py_ssize_t size = 6 + PyBytes_GET_SIZE(head);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t origin_bytes;
        PyObject *packed;
        if (slice_parts(PyList_GET_ITEM(slices, i), &origin_bytes, &packed) == NULL)
            return NULL;
        SliceForm form;
        if (!slice_form((const unsigned char *)PyBytes_AS_STRING(packed),
                        PyBytes_GET_SIZE(packed), &form))
            Py_RETURN_NONE;
        size += 21 + origin_bytes + form.body;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL)
        return NULL;
    unsigned char *start = (unsigned char *)PyBytes_AS_STRING(out);
    unsigned char *at = start;
    *at++ = 0x95;
    memcpy(at, PyBytes_AS_STRING(head), (size_t)PyBytes_GET_SIZE(head));
    at += PyBytes_GET_SIZE(head);
    at = put_array_header(at, n);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t origin_bytes;
        PyObject *packed;
        const char *origin = slice_parts(PyList_GET_ITEM(slices, i), &origin_bytes, &packed);
        const unsigned char *bytes = (const unsigned char *)PyBytes_AS_STRING(packed);
        SliceForm form;
        slice_form(bytes, PyBytes_GET_SIZE(packed), &form); /* (checked above) */
        const unsigned char *indices = bytes + 1, *values = bytes + 1 + 4 * form.count;
        *at++ = 0x94;
        at = put_str(at, origin, origin_bytes);
        if (form.form == 2) {
            *at++ = (unsigned char)form.width;
            at = put_bin(at, (const char *)indices, 4 * form.count);
            at = put_bin(at, (const char *)values, form.count * form.width);
            continue;
        }
        uint32_t run_start = form.form == 0 ? form.first - form.first % 8 : form.first;
        *at++ = form.form == 0 ? 0 : (unsigned char)form.width;
        at = put_uint(at, run_start);
        /* the run's bin header, then its bytes zeroed and the pairs set in them */
        Py_ssize_t body = form.body;
        at = put_bin_header(at, body);
        memset(at, 0, (size_t)body);
        for (Py_ssize_t k = 0; k < form.count; k++) {
            uint32_t index = read_index(indices + 4 * k) - run_start;
            if (form.form == 0)
                at[index >> 3] |= (unsigned char)(1u << (index & 7));
            else
                memcpy(at + (Py_ssize_t)index * form.width, values + k * form.width,
                       (size_t)form.width);
        }
        at += body;
    }
    if (_PyBytes_Resize(&out, at - start) < 0)
        return NULL;
    return out;
}

/* -- reading a PUSH of replicated writes ------------------------------------------------------
 *
 * A msgpack reader over [at, end) for exactly the forms msgpack.packb writes for the fields
 * push_few reads. Each returns 1 and advances on the form it takes, 0 (no exception, `at`
 * anywhere) on anything else: push_few then answers None and the caller decodes the payload
 * in Python, which takes (or refuses) every other form. */
typedef struct {
    const unsigned char *at;
    const unsigned char *end;
} Reader;

static int take_bytes(Reader *r, Py_ssize_t n, const unsigned char **out)
{
    if (n < 0 || r->end - r->at < n)
        return 0;
    *out = r->at;
    r->at += n;
    return 1;
}

static int take_be(Reader *r, int n, uint64_t *out)
{
    const unsigned char *p;
    if (!take_bytes(r, n, &p))
        return 0;
    uint64_t v = 0;
    for (int k = 0; k < n; k++)
        v = (v << 8) | p[k];
    *out = v;
    return 1;
}

static int read_uint(Reader *r, uint64_t *out)
{
    if (r->at >= r->end)
        return 0;
    unsigned char tag = *r->at++;
    if (tag <= 0x7f) {
        *out = tag;
        return 1;
    }
    switch (tag) {
    case 0xcc: return take_be(r, 1, out);
    case 0xcd: return take_be(r, 2, out);
    case 0xce: return take_be(r, 4, out);
    case 0xcf: return take_be(r, 8, out);
    default: return 0;
    }
}

/* Any msgpack integer (a schema parameter may be negative). */
static int skip_int(Reader *r)
{
    if (r->at >= r->end)
        return 0;
    unsigned char tag = *r->at;
    uint64_t ignored;
    if (tag <= 0x7f || tag >= 0xe0) {
        r->at++;
        return 1;
    }
    if (tag >= 0xd0 && tag <= 0xd3) {
        r->at++;
        return take_be(r, 1 << (tag - 0xd0), &ignored);
    }
    return read_uint(r, &ignored);
}

static int read_array(Reader *r, Py_ssize_t *n)
{
    if (r->at >= r->end)
        return 0;
    unsigned char tag = *r->at++;
    uint64_t v;
    if ((tag & 0xf0) == 0x90) {
        v = tag & 0x0f;
    } else if (tag == 0xdc) {
        if (!take_be(r, 2, &v))
            return 0;
    } else if (tag == 0xdd) {
        if (!take_be(r, 4, &v))
            return 0;
    } else {
        return 0;
    }
    if (v > (uint64_t)(r->end - r->at)) /* (each element takes a byte at least) */
        return 0;
    *n = (Py_ssize_t)v;
    return 1;
}

static int read_bin(Reader *r, const unsigned char **data, Py_ssize_t *n)
{
    if (r->at >= r->end)
        return 0;
    unsigned char tag = *r->at++;
    uint64_t v;
    if (tag < 0xc4 || tag > 0xc6 || !take_be(r, 1 << (tag - 0xc4), &v) ||
        v > (uint64_t)(r->end - r->at))
        return 0;
    *n = (Py_ssize_t)v;
    return take_bytes(r, *n, data);
}

static int read_str(Reader *r, const unsigned char **data, Py_ssize_t *n)
{
    if (r->at >= r->end)
        return 0;
    unsigned char tag = *r->at++;
    uint64_t v;
    if ((tag & 0xe0) == 0xa0) {
        v = tag & 0x1f;
    } else if (tag >= 0xd9 && tag <= 0xdb) {
        if (!take_be(r, 1 << (tag - 0xd9), &v))
            return 0;
    } else {
        return 0;
    }
    if (v > (uint64_t)(r->end - r->at))
        return 0;
    *n = (Py_ssize_t)v;
    return take_bytes(r, *n, data);
}

static int read_bool(Reader *r, int *out)
{
    if (r->at >= r->end || (*r->at != 0xc2 && *r->at != 0xc3))
        return 0;
    *out = *r->at++ == 0xc3;
    return 1;
}

/* A schema [kind str, [int, ...], size uint, additive bool]: only walked over (its bytes are
 * the key of the caller's table of schemas already checked). */
static int skip_schema(Reader *r)
{
    Py_ssize_t n, params;
    const unsigned char *data;
    int flag;
    uint64_t size;
    if (!read_array(r, &n) || n != 4 || !read_str(r, &data, &n) || !read_array(r, &params))
        return 0;
    for (Py_ssize_t k = 0; k < params; k++)
        if (!skip_int(r))
            return 0;
    return read_uint(r, &size) && read_bool(r, &flag);
}

/* One PUSH item [key, [1, epoch, schema, [stamp, deadline], [[origin, width, indices, values]]],
 * full] of a replicated write's few pairs (the shape codec.few_pairs_from_wire takes) as
 * (key, ((epoch, schema, (stamp, deadline), origin, indices, values), entry bytes), full).
 * Py_None (a new reference) when it is not that shape; the schema's bytes (a new reference)
 * when `schemas` does not hold them; NULL with an exception on a memory error. */
static PyObject *few_item(Reader *r, PyObject *schemas, uint64_t key_bytes_max)
{
    Py_ssize_t n, key_bytes, origin_bytes, index_bytes, value_bytes;
    const unsigned char *key, *origin, *where, *raw_values;
    uint64_t version, epoch, stamp, deadline, width;
    int full;
    if (!read_array(r, &n) || n != 3 || !read_bin(r, &key, &key_bytes) ||
        (uint64_t)key_bytes > key_bytes_max)
        Py_RETURN_NONE;
    const unsigned char *entry_start = r->at;
    if (!read_array(r, &n) || n != 5 || !read_uint(r, &version) || version != 1 ||
        !read_uint(r, &epoch) || epoch > (uint64_t)INT64_MAX)
        Py_RETURN_NONE;
    const unsigned char *schema_start = r->at;
    if (!skip_schema(r))
        Py_RETURN_NONE;
    const unsigned char *schema_end = r->at;
    if (!read_array(r, &n) || n != 2 || !read_uint(r, &stamp) || stamp > (uint64_t)INT64_MAX ||
        !read_uint(r, &deadline) || deadline > (uint64_t)INT64_MAX || !read_array(r, &n) ||
        n != 1 || !read_array(r, &n) || n != 4 || !read_str(r, &origin, &origin_bytes) ||
        !read_uint(r, &width) || !read_bin(r, &where, &index_bytes) ||
        !read_bin(r, &raw_values, &value_bytes))
        Py_RETURN_NONE;
    const unsigned char *entry_end = r->at;
    if (!read_bool(r, &full))
        Py_RETURN_NONE;
    /* ASCII origins only (a node id is hex): a code point is then a byte. */
    if (origin_bytes > 64 || (origin_bytes && origin[0] == '~') || width > 8)
        Py_RETURN_NONE;
    for (Py_ssize_t k = 0; k < origin_bytes; k++)
        if (origin[k] & 0x80)
            Py_RETURN_NONE;
    PyObject *schema_key =
        PyBytes_FromStringAndSize((const char *)schema_start, schema_end - schema_start);
    if (schema_key == NULL)
        return NULL;
    PyObject *known = PyDict_GetItemWithError(schemas, schema_key); /* borrowed */
    if (known == NULL) {
        if (PyErr_Occurred()) {
            Py_DECREF(schema_key);
            return NULL;
        }
        return schema_key;
    }
    Py_DECREF(schema_key);
    /* (schema, size, additive), as the caller's table holds each */
    if (!PyTuple_Check(known) || PyTuple_GET_SIZE(known) != 3) {
        PyErr_SetString(PyExc_TypeError, "schemas must map bytes to (schema, size, additive)");
        return NULL;
    }
    unsigned long long size = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(known, 1));
    if (size == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    int additive = PyObject_IsTrue(PyTuple_GET_ITEM(known, 2));
    if (additive < 0)
        return NULL;
    if (additive == (origin_bytes == 0))
        Py_RETURN_NONE;
    PyObject *pairs = few_lists((long)width, where, index_bytes, raw_values, value_bytes, size);
    if (pairs == NULL || pairs == Py_None)
        return pairs;
    PyObject *few = Py_BuildValue(
        "(KO(KK)s#OO)", (unsigned long long)epoch, PyTuple_GET_ITEM(known, 0),
        (unsigned long long)stamp, (unsigned long long)deadline, (const char *)origin,
        origin_bytes, PyTuple_GET_ITEM(pairs, 0), PyTuple_GET_ITEM(pairs, 1));
    Py_DECREF(pairs);
    if (few == NULL)
        return NULL;
    return Py_BuildValue("(y#(Ny#)O)", (const char *)key, key_bytes, few,
                         (const char *)entry_start, (Py_ssize_t)(entry_end - entry_start),
                         full ? Py_True : Py_False);
}

PyDoc_STRVAR(push_few_doc,
             "push_few(payload, schemas, key_bytes_max, items_max, /)\n\n"
             "A PUSH whose items are all replicated writes of a few pairs, read without\n"
             "msgpack's objects: (relay, ack_seq, items), the bytes of a schema `schemas`\n"
             "lacks, or None for any other payload.");

/* push_few(payload, schemas, key_bytes_max, items_max): a PUSH [relay, ack_seq, [item, ...]]
 * whose every item is a replicated write's few pairs (see few_item) read straight from its
 * bytes: (relay, ack_seq, [(key, (few, entry bytes), full), ...]), what messages.push_parts
 * and decode_push_item_fast give for it (the entry bytes stand for the item's decoded entry:
 * msgpack reads them into the same object). `schemas` maps a schema's msgpack bytes to
 * (schema, size, additive) for the schemas the caller has checked; a schema it lacks is
 * answered with its bytes so the caller can check it. None for every other payload, malformed
 * ones included: the caller then decodes it in Python, which takes it or refuses it. A
 * receiver reads every replicated write this way (msgpack's lists and the checks in Python
 * were ~14% of what it spent on one). */
static PyObject *push_few(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "push_few() takes 4 positional arguments, got %zd", nargs);
        return NULL;
    }
    if (!PyBytes_Check(args[0]) || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "payload must be bytes, schemas a dict");
        return NULL;
    }
    unsigned long long key_bytes_max = PyLong_AsUnsignedLongLong(args[2]);
    if (key_bytes_max == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t items_max = PyLong_AsSsize_t(args[3]);
    if (items_max == -1 && PyErr_Occurred())
        return NULL;
    Reader r = {(const unsigned char *)PyBytes_AS_STRING(args[0]), NULL};
    r.end = r.at + PyBytes_GET_SIZE(args[0]);
    Py_ssize_t n;
    uint64_t relay_fanout = 0, ack_seq;
    int relay_flag = -1;
    if (!read_array(&r, &n) || n != 3)
        Py_RETURN_NONE;
    if (!read_bool(&r, &relay_flag) && (!read_uint(&r, &relay_fanout) || relay_fanout > 255))
        Py_RETURN_NONE;
    if (!read_uint(&r, &ack_seq) || !read_array(&r, &n) || n > items_max)
        Py_RETURN_NONE;
    PyObject *items = PyList_New(n);
    if (items == NULL)
        return NULL;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *item = few_item(&r, args[1], key_bytes_max);
        if (item == NULL || !PyTuple_Check(item)) {
            Py_DECREF(items);
            return item; /* NULL, None or a schema's bytes */
        }
        PyList_SET_ITEM(items, k, item);
    }
    if (r.at != r.end) { /* (trailing bytes: msgpack refuses the payload) */
        Py_DECREF(items);
        Py_RETURN_NONE;
    }
    PyObject *relay = relay_flag >= 0 ? PyBool_FromLong(relay_flag)
                                      : PyLong_FromUnsignedLongLong(relay_fanout);
    if (relay == NULL) {
        Py_DECREF(items);
        return NULL;
    }
    return Py_BuildValue("(NKN)", relay, (unsigned long long)ack_seq, items);
}

PyDoc_STRVAR(count_bits_doc,
             "count_bits(bits, low, high, /)\n"
             "How many bits low <= i < high of a bitset buffer are set (bit i in byte i // 8,\n"
             "bit i % 8; none past the buffer).");

/* count_bits' and bit_indices' arguments: a bitset buffer (the caller releases `view`), then
 * `want - 1` unsigned 64-bit ints into `ints`; 0 with an exception set when they are not. */
static int bitset_args(const char *name, PyObject *const *args, Py_ssize_t nargs,
                       Py_ssize_t want, unsigned long long *ints, Py_buffer *view)
{
    if (nargs != want) {
        PyErr_Format(PyExc_TypeError, "%s() takes %zd positional arguments, got %zd", name,
                     want, nargs);
        return 0;
    }
    for (Py_ssize_t i = 1; i < want; i++) {
        ints[i - 1] = PyLong_AsUnsignedLongLong(args[i]);
        if (ints[i - 1] == (unsigned long long)-1 && PyErr_Occurred())
            return 0;
    }
    return PyObject_GetBuffer(args[0], view, PyBUF_C_CONTIGUOUS) == 0;
}

static PyObject *count_bits(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    unsigned long long ends[2];
    Py_buffer view;
    if (!bitset_args("count_bits", args, nargs, 3, ends, &view))
        return NULL;
    uint64_t count = bitset_count(view.buf, view.len, ends[0], ends[1]);
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLongLong(count);
}

PyDoc_STRVAR(set_bits_doc,
             "set_bits(bits, indices, /)\n"
             "Sets bit i of a writable bitset buffer for every i of ``indices`` (a contiguous\n"
             "uint32 buffer, any order, repeats allowed; IndexError for one past the buffer,\n"
             "before any bit is set). numpy's ``bitwise_or.at`` took a fifth of a BF.MADD.");

static PyObject *set_bits(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "set_bits(bits, indices)");
        return NULL;
    }
    Py_buffer bits, indices;
    if (PyObject_GetBuffer(args[0], &bits, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[1], &indices, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyBuffer_Release(&bits);
        return NULL;
    }
    PyObject *result = NULL;
    if (indices.itemsize != 4 || indices.len % 4 != 0) {
        PyErr_SetString(PyExc_ValueError, "indices: a uint32 buffer");
        goto done;
    }
    const uint32_t *at = indices.buf;
    Py_ssize_t n = indices.len / 4;
    uint64_t limit = (uint64_t)bits.len * 8;
    for (Py_ssize_t i = 0; i < n; i++) {
        if ((uint64_t)at[i] >= limit) {
            PyErr_SetString(PyExc_IndexError, "an index past the bitset");
            goto done;
        }
    }
    uint8_t *bytes = bits.buf;
    for (Py_ssize_t i = 0; i < n; i++)
        bytes[at[i] >> 3] |= (uint8_t)(1u << (at[i] & 7));
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&bits);
    PyBuffer_Release(&indices);
    return result;
}

PyDoc_STRVAR(join_packed_doc,
             "join_packed(parts, /)\n"
             "The join (element-wise max) of a list of packed sparse pairs: (the joined pairs,\n"
             "packed with the narrowest width for their largest value; how many pairs the parts\n"
             "held in all, duplicates counted). TypeError / ValueError for a part that is not\n"
             "packed pairs.");

static PyObject *join_packed(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 1 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "join_packed() takes one list of packed pairs");
        return NULL;
    }
    PyObject *parts = args[0];
    Py_ssize_t count = PyList_GET_SIZE(parts);
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        Packed p;
        if (!packed_of(PyList_GET_ITEM(parts, i), &p))
            return NULL;
        total += p.count;
    }
    Pair *pairs = PyMem_Malloc((size_t)(total ? total : 1) * sizeof(Pair));
    if (pairs == NULL)
        return PyErr_NoMemory();
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        Packed p;
        packed_of(PyList_GET_ITEM(parts, i), &p); /* (checked above; the list is ours) */
        for (Py_ssize_t j = 0; j < p.count; j++) {
            uint64_t value = read_value(p.held + (Py_ssize_t)p.width * j, p.width);
            if (value) {
                pairs[n].index = read_index(p.bytes + 1 + 4 * j);
                pairs[n++].value = value;
            }
        }
    }
    PyObject *joined = pack_pairs(pairs, sorted_maxima(pairs, n));
    PyMem_Free(pairs);
    if (joined == NULL)
        return NULL;
    return Py_BuildValue("(Nn)", joined, total);
}

PyDoc_STRVAR(bit_indices_doc,
             "bit_indices(bits, start, /)\n"
             "The set bits of a bitset buffer as little-endian uint32 indices, ascending (bit i\n"
             "in byte i // 8, bit i % 8, numbered from `start`): the index half of the pairs\n"
             "of a Bloom filter held as bits. ValueError past the 32-bit indices.");

static PyObject *bit_indices(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    unsigned long long start;
    Py_buffer view;
    if (!bitset_args("bit_indices", args, nargs, 2, &start, &view))
        return NULL;
    const uint8_t *at = view.buf;
    if (start > (uint64_t)UINT32_MAX + 1 ||
        (uint64_t)view.len > ((uint64_t)UINT32_MAX + 1 - start) / 8) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "bit indices past 2**32");
        return NULL;
    }
    uint64_t count = 0;
    for (Py_ssize_t i = 0; i < view.len; i++)
        count += (uint64_t)__builtin_popcount(at[i]);
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(4 * count));
    if (out == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    unsigned char *into = (unsigned char *)PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < view.len; i++) {
        unsigned byte = at[i];
        while (byte) {
            int bit = __builtin_ctz(byte);
            write_index(into, start + 8 * (uint64_t)i + (uint64_t)bit);
            into += 4;
            byte &= byte - 1;
        }
    }
    PyBuffer_Release(&view);
    return out;
}

static PyMethodDef methods[] = {
    {"bit_indices", (PyCFunction)(void (*)(void))bit_indices, METH_FASTCALL, bit_indices_doc},
    {"count_bits", (PyCFunction)(void (*)(void))count_bits, METH_FASTCALL, count_bits_doc},
    {"set_bits", (PyCFunction)(void (*)(void))set_bits, METH_FASTCALL, set_bits_doc},
    {"join_packed", (PyCFunction)(void (*)(void))join_packed, METH_FASTCALL, join_packed_doc},
    {"merge_few", (PyCFunction)(void (*)(void))merge_few, METH_FASTCALL, merge_few_doc},
    {"values", (PyCFunction)(void (*)(void))values, METH_FASTCALL, values_doc},
    {"window", (PyCFunction)(void (*)(void))window, METH_FASTCALL, window_doc},
    {"merge_few_dense", (PyCFunction)(void (*)(void))merge_few_dense, METH_FASTCALL,
     merge_few_dense_doc},
    {"values_dense", (PyCFunction)(void (*)(void))values_dense, METH_FASTCALL,
     values_dense_doc},
    {"checked_pairs", (PyCFunction)(void (*)(void))checked_pairs, METH_FASTCALL,
     checked_pairs_doc},
    {"push_item", (PyCFunction)(void (*)(void))push_item, METH_FASTCALL, push_item_doc},
    {"entry_bytes", (PyCFunction)(void (*)(void))entry_bytes, METH_FASTCALL, entry_bytes_doc},
    {"push_few", (PyCFunction)(void (*)(void))push_few, METH_FASTCALL, push_few_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "hearsay.lattice._sparse",
    "A few pairs merged into a sparse max-vector's packed pairs.",
    0,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__sparse(void)
{
    return PyModuleDef_Init(&module);
}
