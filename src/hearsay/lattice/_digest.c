/* The per-pair content hash of hearsay.lattice.digest, XORed over many pairs in one call.
 *
 * An entry's content hash XORs one hash per pair (index, value) under a per-key, per-origin
 * base: fmix64(base ^ fmix64((index * GOLDEN) ^ value)) (MurmurHash3's finaliser, all
 * arithmetic mod 2**64). Every write and every replicated merge hashes the pairs that grew
 * and their previous values; in Python each pair cost about a microsecond (two calls of the
 * finaliser), the biggest part of a small write's bookkeeping. The reference is
 * hearsay.lattice.digest.pair_hash_reference (plain Python); the tests hold this code to it
 * bit for bit, since anti-entropy compares these hashes across nodes and versions.
 *
 * Needs only the CPython API: numpy arrays come in through the buffer protocol.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define GOLDEN 0x9E3779B97F4A7C15ULL

static inline uint64_t fmix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xFF51AFD7ED558CCDULL;
    x ^= x >> 33;
    x *= 0xC4CEB9FE1A85EC53ULL;
    return x ^ (x >> 33);
}

static inline uint64_t pair_hash(uint64_t base, uint64_t index, uint64_t value)
{
    return fmix64(base ^ fmix64((index * GOLDEN) ^ value));
}

/* A Python int as uint64 (0..2**64-1), else -1 with an exception set. */
static int as_u64(PyObject *obj, uint64_t *out)
{
    unsigned long long v;

    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "expected an int, got %.100s", Py_TYPE(obj)->tp_name);
        return -1;
    }
    v = PyLong_AsUnsignedLongLong(obj);
    if (v == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    *out = (uint64_t)v;
    return 0;
}

/* Item i of a 1-D buffer of unsigned integers (formats B, H, I, L, Q and their aliases). */
static int read_unsigned(const Py_buffer *view, Py_ssize_t i, uint64_t *out)
{
    const char *p = (const char *)view->buf + i * view->strides[0];

    switch (view->itemsize) {
    case 1: *out = *(const uint8_t *)p; return 0;
    case 2: { uint16_t v; memcpy(&v, p, 2); *out = v; return 0; }
    case 4: { uint32_t v; memcpy(&v, p, 4); *out = v; return 0; }
    case 8: { uint64_t v; memcpy(&v, p, 8); *out = v; return 0; }
    default: return -1;
    }
}

static int get_unsigned_array(PyObject *obj, const char *name, Py_buffer *view)
{
    const char *format;

    if (PyObject_GetBuffer(obj, view, PyBUF_FORMAT | PyBUF_STRIDES) < 0)
        return -1;
    format = view->format;
    if (format[0] == '<' || format[0] == '=' || format[0] == '@')
        format++;
    if (view->ndim != 1 || strlen(format) != 1 || strchr("BHILQ", format[0]) == NULL
        || (view->itemsize != 1 && view->itemsize != 2 && view->itemsize != 4
            && view->itemsize != 8)) {
        PyErr_Format(PyExc_ValueError, "%s must be a 1-D array of unsigned integers, got '%s'",
                     name, view->format);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(xor_pairs_doc,
"xor_pairs(base, indices, values, /)\n--\n\n"
"XOR of each pair's hash under `base`: `indices` and `values` are 1-D arrays of unsigned\n"
"integers of one length (any of numpy's unsigned dtypes, any strides).");

static PyObject *xor_pairs(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer indices, values;
    uint64_t base, acc = 0, index, value;
    Py_ssize_t n;

    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "xor_pairs() takes 3 positional arguments, got %zd", nargs);
        return NULL;
    }
    if (as_u64(args[0], &base) < 0 || get_unsigned_array(args[1], "indices", &indices) < 0)
        return NULL;
    if (get_unsigned_array(args[2], "values", &values) < 0) {
        PyBuffer_Release(&indices);
        return NULL;
    }
    n = indices.shape[0];
    if (values.shape[0] != n) {
        PyErr_Format(PyExc_ValueError, "%zd indices but %zd values", n, values.shape[0]);
    } else {
        for (Py_ssize_t i = 0; i < n; i++) {
            read_unsigned(&indices, i, &index);
            read_unsigned(&values, i, &value);
            acc ^= pair_hash(base, index, value);
        }
    }
    PyBuffer_Release(&indices);
    PyBuffer_Release(&values);
    if (PyErr_Occurred())
        return NULL;
    return PyLong_FromUnsignedLongLong(acc);
}

PyDoc_STRVAR(xor_packed_doc,
"xor_packed(base, packed, /)\n--\n\n"
"XOR of each pair's hash under `base` for a sparse vector's packed pairs (a width byte w of\n"
"1, 2, 4 or 8, then n little-endian uint32 indices, then n values of w bytes): no list of\n"
"items, no arrays. ValueError when the bytes are not of that form.");

static PyObject *xor_packed(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    uint64_t base, acc = 0;
    const unsigned char *buf;
    Py_ssize_t width, count;

    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "xor_packed() takes 2 positional arguments, got %zd", nargs);
        return NULL;
    }
    if (as_u64(args[0], &base) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[1], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    buf = (const unsigned char *)view.buf;
    width = view.len > 0 ? buf[0] : 0;
    if ((width != 1 && width != 2 && width != 4 && width != 8)
        || (view.len - 1) % (4 + width) != 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "not packed pairs");
        return NULL;
    }
    count = (view.len - 1) / (4 + width);
    for (Py_ssize_t i = 0; i < count; i++) {
        const unsigned char *at = buf + 1 + 4 * i;
        const unsigned char *vat = buf + 1 + 4 * count + width * i;
        uint64_t index = (uint64_t)at[0] | (uint64_t)at[1] << 8 | (uint64_t)at[2] << 16
                         | (uint64_t)at[3] << 24;
        uint64_t value = 0;
        for (Py_ssize_t b = width - 1; b >= 0; b--)
            value = value << 8 | vat[b];
        acc ^= pair_hash(base, index, value);
    }
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLongLong(acc);
}

PyDoc_STRVAR(xor_bits_doc,
             "xor_bits(base, bits, start, /)\n"
             "XOR of pair_hash(base, index, 1) over the set bits of a bitset buffer (bit i in\n"
             "byte i // 8, bit i % 8, numbered from `start`): a vector held as bits, read\n"
             "without building its pairs.");

static PyObject *xor_bits(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    Py_buffer view;
    uint64_t base, start, acc = 0;

    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "xor_bits() takes 3 positional arguments, got %zd", nargs);
        return NULL;
    }
    if (as_u64(args[0], &base) < 0 || as_u64(args[2], &start) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[1], &view, PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    const unsigned char *buf = (const unsigned char *)view.buf;
    for (Py_ssize_t i = 0; i < view.len; i++) {
        unsigned byte = buf[i];
        while (byte) {
            acc ^= pair_hash(base, start + 8 * (uint64_t)i + (uint64_t)__builtin_ctz(byte), 1);
            byte &= byte - 1;
        }
    }
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLongLong(acc);
}

static PyMethodDef methods[] = {
    {"xor_bits", (PyCFunction)(void (*)(void))xor_bits, METH_FASTCALL, xor_bits_doc},
    {"xor_packed", (PyCFunction)(void (*)(void))xor_packed, METH_FASTCALL, xor_packed_doc},
    {"xor_pairs", (PyCFunction)(void (*)(void))xor_pairs, METH_FASTCALL, xor_pairs_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_digest",
    "The per-pair content hash of hearsay.lattice.digest, in C.", -1, methods,
};

PyMODINIT_FUNC PyInit__digest(void) { return PyModule_Create(&module); }
