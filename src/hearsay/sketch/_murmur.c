/* MurmurHash64A as Redis's HyperLogLog uses it, and hllPatLen's (index, rank) per member.
 *
 * The reference is hearsay.sketch.murmur.murmurhash64a (plain Python); the tests hold this
 * code to it bit for bit. Written in C because no maintained package provides MurmurHash64A
 * and numpy's fixed cost per ufunc call dominated the small batches PFADD hashes. The batch
 * function writes into buffers the caller allocates (numpy arrays), so this file needs only
 * the CPython API, not numpy's.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define M 0xc6a4a7935bd1e995ULL
#define R 47
#define PRECISION_MIN 4
#define PRECISION_MAX 18

/* Redis reads blocks little-endian on every platform (its endian-neutral variant). */
static uint64_t load_le64(const unsigned char *p, Py_ssize_t n)
{
    uint64_t k = 0;
    for (Py_ssize_t i = n - 1; i >= 0; i--)
        k = (k << 8) | p[i];
    return k;
}

static uint64_t murmurhash64a(const unsigned char *data, Py_ssize_t len, uint32_t seed)
{
    uint64_t h = seed ^ ((uint64_t)len * M);
    const unsigned char *end = data + (len & ~(Py_ssize_t)7);

    for (; data != end; data += 8) {
        uint64_t k = load_le64(data, 8);
        k *= M;
        k ^= k >> R;
        k *= M;
        h ^= k;
        h *= M;
    }
    if (len & 7) {
        h ^= load_le64(data, len & 7);
        h *= M;
    }
    h ^= h >> R;
    h *= M;
    h ^= h >> R;
    return h;
}

/* hllPatLen's rank: 1 + the trailing zeros of w, which is never 0. */
static uint8_t rank_of(uint64_t w)
{
#if defined(__GNUC__) || defined(__clang__)
    return (uint8_t)(__builtin_ctzll(w) + 1);
#else
    uint8_t rank = 1;
    for (; !(w & 1); w >>= 1)
        rank++;
    return rank;
#endif
}

/* The seed as Redis's C `unsigned int`: any integer 0..2**32-1, else ValueError. */
static int parse_seed(PyObject *obj, uint32_t *seed)
{
    int overflow;
    long long value = PyLong_AsLongLongAndOverflow(obj, &overflow);

    if (value == -1 && PyErr_Occurred())
        return -1;
    if (overflow || value < 0 || value > 0xFFFFFFFFLL) {
        PyErr_Format(PyExc_ValueError, "seed must fit in 32 bits, got %R", obj);
        return -1;
    }
    *seed = (uint32_t)value;
    return 0;
}

/* A contiguous writable buffer of exactly n items of `format` (one char, e.g. "I"). */
static int get_output(PyObject *obj, const char *name, const char *format, Py_ssize_t itemsize,
                      Py_ssize_t n, Py_buffer *view)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_WRITABLE | PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    if (view->itemsize != itemsize || strcmp(view->format, format) != 0 || view->len != n * itemsize) {
        PyErr_Format(PyExc_ValueError,
                     "%s must be a writable buffer of %zd items of format '%s' (%zd bytes each), "
                     "got format '%s', %zd bytes",
                     name, n, format, itemsize, view->format, view->len);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static int check_nargs(const char *name, Py_ssize_t nargs, Py_ssize_t expected)
{
    if (nargs == expected)
        return 0;
    PyErr_Format(PyExc_TypeError, "%s() takes %zd positional arguments, got %zd", name, expected,
                 nargs);
    return -1;
}

PyDoc_STRVAR(hash64a_doc,
"hash64a(data, seed, /)\n--\n\n"
"MurmurHash64A of the bytes-like `data` (Redis's endian-neutral variant) as a uint64.");

static PyObject *hash64a(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data;
    uint32_t seed;
    uint64_t h;

    if (check_nargs("hash64a", nargs, 2) < 0 || parse_seed(args[1], &seed) < 0)
        return NULL;
    if (PyBytes_CheckExact(args[0])) /* the common case: no buffer to acquire */
        return PyLong_FromUnsignedLongLong(murmurhash64a(
            (const unsigned char *)PyBytes_AS_STRING(args[0]), PyBytes_GET_SIZE(args[0]), seed));
    if (PyObject_GetBuffer(args[0], &data, PyBUF_SIMPLE) < 0)
        return NULL;
    h = murmurhash64a(data.buf, data.len, seed);
    PyBuffer_Release(&data);
    return PyLong_FromUnsignedLongLong(h);
}

/* One member's hash; -1 with an exception set when it is not bytes-like. */
static int hash_member(PyObject *member, Py_ssize_t i, uint32_t seed, uint64_t *h)
{
    Py_buffer data;

    if (PyBytes_CheckExact(member)) {
        *h = murmurhash64a((const unsigned char *)PyBytes_AS_STRING(member),
                           PyBytes_GET_SIZE(member), seed);
        return 0;
    }
    if (!PyObject_CheckBuffer(member)) {
        PyErr_Format(PyExc_TypeError, "members[%zd] must be bytes-like, not %.100s", i,
                     Py_TYPE(member)->tp_name);
        return -1;
    }
    if (PyObject_GetBuffer(member, &data, PyBUF_SIMPLE) < 0)
        return -1;
    *h = murmurhash64a(data.buf, data.len, seed);
    PyBuffer_Release(&data);
    return 0;
}

PyDoc_STRVAR(index_rank_doc,
"index_rank(members, p, seed, indices, ranks, /)\n--\n\n"
"Write Redis's hllPatLen of each member's MurmurHash64A: indices[i] = the low p bits,\n"
"ranks[i] = 1 + the trailing zeros of (hash >> p) | (1 << (64 - p)). members is a sequence\n"
"of bytes-like objects; indices and ranks are writable buffers of len(members) items of\n"
"format 'I' (uint32) and 'B' (uint8).");

static PyObject *index_rank(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *members;
    Py_ssize_t n;
    long p;
    int overflow;
    uint32_t seed;
    Py_buffer indices_view, ranks_view;
    uint32_t *indices;
    uint8_t *ranks;
    PyObject *result = NULL;

    if (check_nargs("index_rank", nargs, 5) < 0)
        return NULL;
    p = PyLong_AsLongAndOverflow(args[1], &overflow);
    if (p == -1 && PyErr_Occurred())
        return NULL;
    if (overflow || p < PRECISION_MIN || p > PRECISION_MAX) {
        PyErr_Format(PyExc_ValueError, "p must be in %d..%d, got %R", PRECISION_MIN,
                     PRECISION_MAX, args[1]);
        return NULL;
    }
    if (parse_seed(args[2], &seed) < 0)
        return NULL;
    /* A list or tuple as it is; any other iterable copied into a list. */
    members = PySequence_Fast(args[0], "members must be a sequence of bytes-like objects");
    if (members == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(members);
    if (get_output(args[3], "indices", "I", 4, n, &indices_view) < 0)
        goto release_members;
    if (get_output(args[4], "ranks", "B", 1, n, &ranks_view) < 0)
        goto release_indices;

    indices = indices_view.buf;
    ranks = ranks_view.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        /* A member's buffer export may run code that shrinks the list: check, and hold it. */
        if (i >= PySequence_Fast_GET_SIZE(members)) {
            PyErr_SetString(PyExc_RuntimeError, "members changed size while being hashed");
            goto release_ranks;
        }
        PyObject *member = PySequence_Fast_GET_ITEM(members, i);
        uint64_t h;
        Py_INCREF(member);
        int failed = hash_member(member, i, seed, &h);
        Py_DECREF(member);
        if (failed)
            goto release_ranks;
        indices[i] = (uint32_t)(h & ((1ULL << p) - 1));
        ranks[i] = rank_of((h >> p) | (1ULL << (64 - p)));
    }
    result = Py_NewRef(Py_None);

release_ranks:
    PyBuffer_Release(&ranks_view);
release_indices:
    PyBuffer_Release(&indices_view);
release_members:
    Py_DECREF(members);
    return result;
}

static PyMethodDef methods[] = {
    {"hash64a", (PyCFunction)(void (*)(void))hash64a, METH_FASTCALL, hash64a_doc},
    {"index_rank", (PyCFunction)(void (*)(void))index_rank, METH_FASTCALL, index_rank_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "hearsay.sketch._murmur",
    .m_doc = "MurmurHash64A and hllPatLen in C; see hearsay.sketch.murmur for the reference.",
    .m_size = 0,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__murmur(void)
{
    return PyModuleDef_Init(&module);
}
