/* Six-bit slots: a dense one-byte max-vector whose values are all at most 63 (an HLL's
 * registers) held in three quarters of the bytes, as Redis packs its dense HLL registers.
 *
 * Layout (Redis's, LSB first): slot i lies at bits 6*i .. 6*i+5 of the buffer read as one
 * little-endian bit string, so four slots fill three bytes: slot 4*g+j is bits 6*j .. 6*j+5 of
 * the 24-bit little-endian word at bytes 3*g .. 3*g+2. The reference is the numpy statement in
 * hearsay.lattice.vector (_pack_six / _unpack_six); the tests hold this code to it.
 *
 * Written in C because a PFADD sets one register in place and a PFCOUNT reads all of them:
 * unpacking 16,384 registers in numpy for every write would cost more than the write. Needs
 * only the CPython API: numpy arrays come in through the buffer protocol.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_sixbit_slots.h"

#define HISTOGRAM_BINS 64

static int check_nargs(const char *name, Py_ssize_t nargs, Py_ssize_t expected)
{
    if (nargs == expected)
        return 0;
    PyErr_Format(PyExc_TypeError, "%s() takes %zd positional arguments, got %zd", name, expected,
                 nargs);
    return -1;
}

/* A contiguous buffer of bytes (writable if asked). */
static int get_bytes(PyObject *obj, int writable, Py_buffer *view)
{
    return PyObject_GetBuffer(obj, view, (writable ? PyBUF_WRITABLE : PyBUF_SIMPLE) | PyBUF_C_CONTIGUOUS);
}

/* A packed buffer of `len` bytes holds len / 3 * 4 slots; any other length is refused. */
static int slots_of(const Py_buffer *packed, Py_ssize_t *slots)
{
    if (packed->len % 3) {
        PyErr_Format(PyExc_ValueError, "a six-bit buffer is a multiple of 3 bytes, got %zd",
                     packed->len);
        return -1;
    }
    *slots = packed->len / 3 * 4;
    return 0;
}

/* An index 0 <= index < slots, else -1 with IndexError set. */
static Py_ssize_t parse_index(PyObject *obj, Py_ssize_t slots)
{
    Py_ssize_t index = PyLong_AsSsize_t(obj);

    if (index == -1 && PyErr_Occurred())
        return -1;
    if (index < 0 || index >= slots) {
        PyErr_Format(PyExc_IndexError, "slot %zd outside 0..%zd", index, slots - 1);
        return -1;
    }
    return index;
}

PyDoc_STRVAR(pack_doc,
"pack(values, packed, /)\n--\n\n"
"Pack the bytes of `values` (one slot each, a multiple of 4 of them) into the writable\n"
"`packed` (3 bytes per 4 slots). Returns False, leaving `packed` partly written, when a value\n"
"is above 63 (it does not fit six bits); True otherwise.");

static PyObject *pack(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer values, packed;
    PyObject *result = NULL;

    if (check_nargs("pack", nargs, 2) < 0 || get_bytes(args[0], 0, &values) < 0)
        return NULL;
    if (get_bytes(args[1], 1, &packed) < 0)
        goto release_values;
    if (values.len % 4 || packed.len != values.len / 4 * 3) {
        PyErr_Format(PyExc_ValueError, "%zd slots (a multiple of 4) do not pack into %zd bytes",
                     values.len, packed.len);
        goto release_packed;
    }
    const uint8_t *v = values.buf;
    uint8_t *p = packed.buf;
    uint8_t seen = 0;
    for (Py_ssize_t g = 0; g < values.len / 4; g++, v += 4, p += 3) {
        seen |= v[0] | v[1] | v[2] | v[3];
        uint32_t word = (uint32_t)v[0] | (uint32_t)v[1] << 6 | (uint32_t)v[2] << 12 | (uint32_t)v[3] << 18;
        p[0] = (uint8_t)word;
        p[1] = (uint8_t)(word >> 8);
        p[2] = (uint8_t)(word >> 16);
    }
    result = PyBool_FromLong(seen <= SIX_MAX);
release_packed:
    PyBuffer_Release(&packed);
release_values:
    PyBuffer_Release(&values);
    return result;
}

PyDoc_STRVAR(unpack_doc,
"unpack(packed, values, /)\n--\n\n"
"Write each slot of `packed` into one byte of the writable `values` (4 per 3 packed bytes).");

static PyObject *unpack(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer packed, values;
    Py_ssize_t slots;
    PyObject *result = NULL;

    if (check_nargs("unpack", nargs, 2) < 0 || get_bytes(args[0], 0, &packed) < 0)
        return NULL;
    if (get_bytes(args[1], 1, &values) < 0)
        goto release_packed;
    if (slots_of(&packed, &slots) < 0)
        goto release_values;
    if (values.len != slots) {
        PyErr_Format(PyExc_ValueError, "%zd packed bytes unpack into %zd slots, not %zd",
                     packed.len, slots, values.len);
        goto release_values;
    }
    const uint8_t *p = packed.buf;
    uint8_t *v = values.buf;
    for (Py_ssize_t g = 0; g < slots / 4; g++, p += 3, v += 4) {
        uint32_t word = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
        v[0] = word & SIX_MAX;
        v[1] = (word >> 6) & SIX_MAX;
        v[2] = (word >> 12) & SIX_MAX;
        v[3] = (word >> 18) & SIX_MAX;
    }
    result = Py_NewRef(Py_None);
release_values:
    PyBuffer_Release(&values);
release_packed:
    PyBuffer_Release(&packed);
    return result;
}

PyDoc_STRVAR(get_doc,
"get(packed, index, /)\n--\n\n"
"The value of slot `index` (IndexError outside the buffer's slots).");

static PyObject *get(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer packed;
    Py_ssize_t slots, index;
    PyObject *result = NULL;

    if (check_nargs("get", nargs, 2) < 0 || get_bytes(args[0], 0, &packed) < 0)
        return NULL;
    if (slots_of(&packed, &slots) == 0 && (index = parse_index(args[1], slots)) >= 0)
        result = PyLong_FromLong((long)get_slot(packed.buf, index));
    PyBuffer_Release(&packed);
    return result;
}

PyDoc_STRVAR(get_many_doc,
"get_many(packed, indices, out, /)\n--\n\n"
"The values of the slots at `indices` (a buffer of native int64) into `out` (a writable buffer\n"
"of native uint64, as long): a pipelined run's lookups in one call. An index outside the\n"
"slots reads 0 (absent, as a vector reads it).");

static PyObject *get_many(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer packed, indices, out;
    Py_ssize_t slots;
    PyObject *result = NULL;

    if (check_nargs("get_many", nargs, 3) < 0 || get_bytes(args[0], 0, &packed) < 0)
        return NULL;
    if (get_bytes(args[1], 0, &indices) < 0) {
        PyBuffer_Release(&packed);
        return NULL;
    }
    if (get_bytes(args[2], 1, &out) < 0) {
        PyBuffer_Release(&indices);
        PyBuffer_Release(&packed);
        return NULL;
    }
    if (slots_of(&packed, &slots) == 0) {
        if (indices.len % 8 || out.len != indices.len) {
            PyErr_SetString(PyExc_ValueError, "indices must be int64 and out as many uint64");
        } else {
            const char *from = (const char *)indices.buf;
            char *to = (char *)out.buf;
            for (Py_ssize_t i = 0; i < indices.len / 8; i++) {
                int64_t index;
                memcpy(&index, from + 8 * i, 8); /* (any alignment) */
                uint64_t value = index >= 0 && index < slots ? get_slot(packed.buf, index) : 0;
                memcpy(to + 8 * i, &value, 8);
            }
            result = Py_NewRef(Py_None);
        }
    }
    PyBuffer_Release(&out);
    PyBuffer_Release(&indices);
    PyBuffer_Release(&packed);
    return result;
}

PyDoc_STRVAR(raise_to_doc,
"raise_to(packed, index, value, /)\n--\n\n"
"Slot `index` of the writable `packed` becomes max(its value, `value`) (0..63); returns the\n"
"value it held before (so the caller knows whether it rose).");

static PyObject *raise_to(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer packed;
    Py_ssize_t slots, index;
    long value;
    PyObject *result = NULL;

    if (check_nargs("raise_to", nargs, 3) < 0)
        return NULL;
    value = PyLong_AsLong(args[2]);
    if (value == -1 && PyErr_Occurred())
        return NULL;
    if (value < 0 || value > SIX_MAX) {
        PyErr_Format(PyExc_ValueError, "a six-bit value is 0..63, got %ld", value);
        return NULL;
    }
    if (get_bytes(args[0], 1, &packed) < 0)
        return NULL;
    if (slots_of(&packed, &slots) == 0 && (index = parse_index(args[1], slots)) >= 0) {
        unsigned held = get_slot(packed.buf, index);
        if ((unsigned)value > held)
            set_slot(packed.buf, index, (unsigned)value);
        result = PyLong_FromLong((long)held);
    }
    PyBuffer_Release(&packed);
    return result;
}

PyDoc_STRVAR(histogram_doc,
"histogram(packed, /)\n--\n\n"
"How many slots hold each value 0..63, as a list of 64 ints (an HLL's register histogram,\n"
"which is all its cardinality estimate reads).");

static PyObject *histogram(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer packed;
    Py_ssize_t slots;
    Py_ssize_t counts[HISTOGRAM_BINS] = {0};
    PyObject *result = NULL;

    if (check_nargs("histogram", nargs, 1) < 0 || get_bytes(args[0], 0, &packed) < 0)
        return NULL;
    if (slots_of(&packed, &slots) < 0)
        goto release;
    const uint8_t *p = packed.buf;
    for (Py_ssize_t g = 0; g < slots / 4; g++, p += 3) {
        uint32_t word = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
        counts[word & SIX_MAX]++;
        counts[(word >> 6) & SIX_MAX]++;
        counts[(word >> 12) & SIX_MAX]++;
        counts[(word >> 18) & SIX_MAX]++;
    }
    result = PyList_New(HISTOGRAM_BINS);
    if (result == NULL)
        goto release;
    for (int bin = 0; bin < HISTOGRAM_BINS; bin++) {
        PyObject *count = PyLong_FromSsize_t(counts[bin]);
        if (count == NULL) {
            Py_CLEAR(result);
            goto release;
        }
        PyList_SET_ITEM(result, bin, count);
    }
release:
    PyBuffer_Release(&packed);
    return result;
}

PyDoc_STRVAR(rises_doc,
"rises(packed, incoming, /)\n--\n\n"
"How many slots of six-bit `incoming` are above the same slots of `packed` (slots past the\n"
"end of `packed` count when non-zero): whether a merge would change anything, without\n"
"unpacking either (re-merging an HLL already merged, the commonest PFMERGE).");

static PyObject *rises(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer packed, incoming;
    Py_ssize_t slots, incoming_slots;
    PyObject *result = NULL;

    if (check_nargs("rises", nargs, 2) < 0 || get_bytes(args[0], 0, &packed) < 0)
        return NULL;
    if (get_bytes(args[1], 0, &incoming) < 0)
        goto release_packed;
    if (slots_of(&packed, &slots) < 0 || slots_of(&incoming, &incoming_slots) < 0)
        goto release_incoming;
    const uint8_t *mine = packed.buf, *theirs = incoming.buf;
    Py_ssize_t risen = 0, shared = (slots < incoming_slots ? slots : incoming_slots) / 4;
    for (Py_ssize_t g = 0; g < shared; g++, mine += 3, theirs += 3) {
        uint32_t in = (uint32_t)theirs[0] | (uint32_t)theirs[1] << 8 | (uint32_t)theirs[2] << 16;
        if (!in)
            continue;
        uint32_t held = (uint32_t)mine[0] | (uint32_t)mine[1] << 8 | (uint32_t)mine[2] << 16;
        if (in == held)
            continue;
        for (unsigned shift = 0; shift < 24; shift += 6)
            risen += ((in >> shift) & SIX_MAX) > ((held >> shift) & SIX_MAX);
    }
    for (Py_ssize_t i = 4 * shared; i < incoming_slots; i++) /* (past the end of `packed`) */
        risen += get_slot(incoming.buf, i) != 0;
    result = PyLong_FromSsize_t(risen);
release_incoming:
    PyBuffer_Release(&incoming);
release_packed:
    PyBuffer_Release(&packed);
    return result;
}

static PyMethodDef methods[] = {
    {"pack", (PyCFunction)(void (*)(void))pack, METH_FASTCALL, pack_doc},
    {"unpack", (PyCFunction)(void (*)(void))unpack, METH_FASTCALL, unpack_doc},
    {"get", (PyCFunction)(void (*)(void))get, METH_FASTCALL, get_doc},
    {"get_many", (PyCFunction)(void (*)(void))get_many, METH_FASTCALL, get_many_doc},
    {"raise_to", (PyCFunction)(void (*)(void))raise_to, METH_FASTCALL, raise_to_doc},
    {"histogram", (PyCFunction)(void (*)(void))histogram, METH_FASTCALL, histogram_doc},
    {"rises", (PyCFunction)(void (*)(void))rises, METH_FASTCALL, rises_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "hearsay.lattice._sixbit",
    .m_doc = "Six-bit slots (Redis's dense HLL register layout) for hearsay.lattice.vector.",
    .m_size = 0,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__sixbit(void)
{
    return PyModuleDef_Init(&module);
}
