/* Count-min cells of one item from its hash (see hearsay.sketch.hashing and countmin), and
 * one splitmix64 output (a Bloom item's second hash, a cuckoo fingerprint's partner offset).
 *
 * Row r's column of an item hashed h is output r + 1 of the splitmix64 stream seeded with h,
 * modulo the width; its cell is r * width + column. In Python ints each output cost ~0.35 us
 * (big-int arithmetic masked to 64 bits): ~1.8 us of every CMS.INCRBY and CMS.QUERY of one
 * item at depth 5. The Python reference is hashing.mix64_int; the tests hold this to it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define DEPTH_MAX 64 /* rows at most (hearsay.sketch.countmin bounds the depth far lower) */

static uint64_t mix64(uint64_t h, uint64_t step)
{
    uint64_t z = h + 0x9E3779B97F4A7C15ULL * step;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

PyDoc_STRVAR(cells_doc, "cells(h, width, depth, /)\n"
                        "The depth cells of an item hashed h: row r's is\n"
                        "r * width + mix64(h, r + 1) % width.");

static PyObject *cells(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "cells() takes 3 positional arguments, got %zd", nargs);
        return NULL;
    }
    unsigned long long h = PyLong_AsUnsignedLongLong(args[0]);
    if (h == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    unsigned long long width = PyLong_AsUnsignedLongLong(args[1]);
    if (width == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    long depth = PyLong_AsLong(args[2]);
    if (depth == -1 && PyErr_Occurred())
        return NULL;
    if (width == 0 || depth < 0 || depth > DEPTH_MAX ||
        (depth > 0 && width > UINT64_MAX / (uint64_t)depth)) {
        PyErr_SetString(PyExc_ValueError, "width must be positive and depth 0..64, their "
                                          "product within 64 bits");
        return NULL;
    }
    PyObject *out = PyList_New(depth);
    if (out == NULL)
        return NULL;
    for (long row = 0; row < depth; row++) {
        uint64_t cell = (uint64_t)row * width + mix64(h, (uint64_t)row + 1) % width;
        PyObject *value = PyLong_FromUnsignedLongLong(cell);
        if (value == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, row, value);
    }
    return out;
}

PyDoc_STRVAR(mix_doc, "mix(h, step, /)\n"
                      "Output step of the splitmix64 stream seeded with h (both taken modulo\n"
                      "2**64, as the Python reference masks them).");

static PyObject *mix(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "mix() takes 2 positional arguments, got %zd", nargs);
        return NULL;
    }
    if (!PyLong_Check(args[0]) || !PyLong_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "mix(int, int)");
        return NULL;
    }
    unsigned long long h = PyLong_AsUnsignedLongLongMask(args[0]);
    if (h == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    unsigned long long step = PyLong_AsUnsignedLongLongMask(args[1]);
    if (step == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    return PyLong_FromUnsignedLongLong(mix64(h, step));
}

static PyMethodDef methods[] = {
    {"mix", (PyCFunction)(void (*)(void))mix, METH_FASTCALL, mix_doc},
    {"cells", (PyCFunction)(void (*)(void))cells, METH_FASTCALL, cells_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "hearsay.sketch._splitmix",
    "Count-min cells of one item from its hash.",
    0,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__splitmix(void)
{
    return PyModuleDef_Init(&module);
}
