/* One item's reads of a Bloom filter held as a bitset (see hearsay.sketch.bloom).
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
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define UNSET_MAX 64 /* hashes per sub-filter at most (hearsay.sketch.bloom bounds it lower) */

static int bit_at(const unsigned char *bytes, Py_ssize_t size, uint64_t position)
{
    uint64_t at = position >> 3;
    if (at >= (uint64_t)size)
        return 0;
    return (bytes[at] >> (position & 7)) & 1;
}

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
    Py_buffer bits, geometry;
    if (read_buffer(args[0], &bits) < 0)
        return NULL;
    if (read_buffer(args[3], &geometry) < 0) {
        PyBuffer_Release(&bits);
        return NULL;
    }
    if (geometry.len % 24 != 0 || count < 0 || count > geometry.len / 24) {
        PyBuffer_Release(&bits);
        PyBuffer_Release(&geometry);
        PyErr_SetString(PyExc_ValueError, "geometry: 24 bytes a sub-filter, count within it");
        return NULL;
    }
    const unsigned char *bytes = bits.buf;
    const unsigned char *shape = geometry.buf;
    int found = 0;
    for (Py_ssize_t link = count - 1; link >= 0 && !found; link--) {
        const unsigned char *at = shape + 24 * link;
        uint64_t base = u64_at(at), size = u64_at(at + 8), hashes = u64_at(at + 16);
        if (size == 0)
            continue;
        int all = 1;
        for (uint64_t k = 0; k < hashes; k++) {
            if (!bit_at(bytes, bits.len, base + (a + k * b) % size)) {
                all = 0;
                break;
            }
        }
        found = all;
    }
    PyBuffer_Release(&bits);
    PyBuffer_Release(&geometry);
    return PyBool_FromLong(found);
}

PyDoc_STRVAR(unset_doc,
             "unset(bits, a, b, base, size, hashes, /) -> list[int]\n\n"
             "The positions of the item hashed ``a``, ``b`` in the sub-filter (base, size, "
             "hashes) whose bits are unset in ``bits``: sorted, each once.");

static int compare_u64(const void *x, const void *y)
{
    uint64_t l = *(const uint64_t *)x, r = *(const uint64_t *)y;
    return (l > r) - (l < r);
}

static PyObject *unset(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "unset(bits, a, b, base, size, hashes)");
        return NULL;
    }
    uint64_t a, b, base, size, hashes;
    if (parse_u64(args[1], &a) < 0 || parse_u64(args[2], &b) < 0 ||
        parse_u64(args[3], &base) < 0 || parse_u64(args[4], &size) < 0 ||
        parse_u64(args[5], &hashes) < 0)
        return NULL;
    if (size == 0 || hashes > UNSET_MAX) {
        PyErr_SetString(PyExc_ValueError, "a sub-filter of 1 bit or more, 64 hashes at most");
        return NULL;
    }
    Py_buffer bits;
    if (read_buffer(args[0], &bits) < 0)
        return NULL;
    uint64_t found[UNSET_MAX];
    Py_ssize_t n = 0;
    for (uint64_t k = 0; k < hashes; k++) {
        uint64_t position = base + (a + k * b) % size;
        if (!bit_at(bits.buf, bits.len, position))
            found[n++] = position;
    }
    PyBuffer_Release(&bits);
    qsort(found, (size_t)n, sizeof found[0], compare_u64);
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i > 0 && found[i] == found[i - 1])
            continue;
        PyObject *value = PyLong_FromUnsignedLongLong(found[i]);
        if (value == NULL || PyList_Append(out, value) < 0) {
            Py_XDECREF(value);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(value);
    }
    return out;
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
    while (n < limit && bit_at(bits.buf, bits.len, start + n))
        n++;
    PyBuffer_Release(&bits);
    return PyLong_FromUnsignedLongLong(n);
}

static PyMethodDef methods[] = {
    {"holds", (PyCFunction)(void (*)(void))holds, METH_FASTCALL, holds_doc},
    {"unset", (PyCFunction)(void (*)(void))unset, METH_FASTCALL, unset_doc},
    {"ones", (PyCFunction)(void (*)(void))ones, METH_FASTCALL, ones_doc},
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
