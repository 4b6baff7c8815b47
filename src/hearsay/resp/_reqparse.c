/* Whole RESP multibulk requests read in one pass: the request parser's fast path.
 *
 * A client that waits for each reply, or pipelines a few commands, sends chunks that hold only
 * whole commands in the canonical form every client library writes:
 *
 *     *<count>\r\n  then <count> times  $<length>\r\n<length bytes>\r\n
 *
 * with counts and lengths in plain decimal ("0", or no leading zero). `commands` returns the
 * commands of such a chunk's longest prefix of them, as lists of bytes, the prefix's length, and
 * whether what follows is a canonical command so far that the bytes end inside (the parser then
 * keeps those bytes to read again with the next chunk).
 * What follows it (a command cut short by the read, an inline command, a count or length that is
 * negative, not canonical or over its limit, any other type byte) is left to the Python parser
 * (hearsay.resp.parser), which reads it as Redis's grammar says and decides: this function never
 * raises on input and never reads a command differently from that parser (the tests hold the two
 * to one answer on random and hostile bytes). An empty array ("*0") is no command, as Redis and
 * the Python parser take it.
 *
 * Why C: the Python path and the hiredis reader it replaced (a reply parser, wrapped in checks
 * that it read only what a request may hold) cost 2.7 us for a one-command chunk; this is a
 * tenth of that, paid by every request a node serves.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

/* A canonical decimal at data[*at] ended by CRLF, no more than `limit`: its value, with *at past
 * the CRLF; -2 when the bytes end before its CRLF does (a canonical start so far), -1 when it is
 * not one. */
static long long read_number(const char *data, Py_ssize_t size, Py_ssize_t *at, long long limit)
{
    Py_ssize_t pos = *at;
    long long value = 0;
    Py_ssize_t digits = 0;
    while (pos < size && data[pos] >= '0' && data[pos] <= '9') {
        if (digits == 1 && value == 0)
            return -1; /* a leading zero */
        value = value * 10 + (data[pos] - '0');
        if (value > limit)
            return -1;
        pos++;
        digits++;
    }
    if (pos == size || (pos + 1 == size && digits > 0 && data[pos] == '\r'))
        return -2;
    if (digits == 0 || data[pos] != '\r' || data[pos + 1] != '\n')
        return -1;
    *at = pos + 2;
    return value;
}

/* One argument "$<length>\r\n<length bytes>\r\n" at data[*at], its length within `bulk_max`:
 * the length, with *at on its payload; -2 when the bytes end inside a canonical one (inside a
 * payload, its CRLF's bytes so far must be CRLF's), -1 when they are not one. */
static long long read_argument(const char *data, Py_ssize_t size, Py_ssize_t *at,
                               long long bulk_max)
{
    if (*at >= size)
        return -2;
    if (data[*at] != '$')
        return -1;
    Py_ssize_t pos = *at + 1;
    long long length = read_number(data, size, &pos, bulk_max);
    if (length < 0)
        return length;
    if (length > size - pos - 2) {
        Py_ssize_t after = pos + (Py_ssize_t)length;
        return after >= size || (data[after] == '\r' && after + 1 == size) ? -2 : -1;
    }
    if (data[pos + length] != '\r' || data[pos + length + 1] != '\n')
        return -1;
    *at = pos;
    return length;
}

/* Whether data[at:size] is the start of `count` canonical arguments that the bytes end inside:
 * the check for a command whose count the rest cannot hold, made without allocating its list. */
static int canonical_start(const char *data, Py_ssize_t size, Py_ssize_t at, long long count,
                           long long bulk_max)
{
    for (long long i = 0; i < count; i++) { /* bounded: each pass consumes bytes or returns */
        long long length = read_argument(data, size, &at, bulk_max);
        if (length < 0)
            return length == -2;
        at += (Py_ssize_t)length + 2;
    }
    return 0; /* (unreachable for a count the bytes cannot hold) */
}

static PyObject *commands(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "commands(data, count_max, bulk_max)");
        return NULL;
    }
    if (!PyBytes_CheckExact(args[0])) /* (a bytearray or view: the Python path copies it) */
        return Py_BuildValue("([]nO)", (Py_ssize_t)0, Py_False);
    long long count_max = PyLong_AsLongLong(args[1]);
    if (count_max == -1 && PyErr_Occurred())
        return NULL;
    long long bulk_max = PyLong_AsLongLong(args[2]);
    if (bulk_max == -1 && PyErr_Occurred())
        return NULL;
    const char *data = PyBytes_AS_STRING(args[0]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    Py_ssize_t done = 0; /* the end of the last whole command read */
    int cut = 0;         /* what follows is a canonical command the bytes end inside */
    while (done < size) { /* bounded: every pass consumes at least four bytes or stops */
        Py_ssize_t at = done;
        if (data[at] != '*')
            break;
        at++;
        long long count = read_number(data, size, &at, count_max);
        if (count < 0) {
            cut = count == -2;
            break;
        }
        /* Each argument takes at least six bytes ("$0\r\n\r\n"): a count the rest cannot hold
         * is a command cut short, left before its list is allocated. */
        if (count > (size - at) / 6) {
            cut = canonical_start(data, size, at, count, bulk_max);
            break;
        }
        if (count == 0) {
            done = at;
            continue;
        }
        PyObject *command = PyList_New((Py_ssize_t)count);
        if (command == NULL)
            goto failed;
        long long i = 0;
        for (; i < count; i++) {
            long long length = read_argument(data, size, &at, bulk_max);
            if (length < 0) {
                cut = length == -2;
                break;
            }
            PyObject *arg = PyBytes_FromStringAndSize(data + at, (Py_ssize_t)length);
            if (arg == NULL) {
                Py_DECREF(command);
                goto failed;
            }
            PyList_SET_ITEM(command, (Py_ssize_t)i, arg);
            at += (Py_ssize_t)length + 2;
        }
        if (i < count) { /* (its unset items are NULL, which a list's dealloc skips) */
            Py_DECREF(command);
            break;
        }
        int appended = PyList_Append(out, command);
        Py_DECREF(command);
        if (appended < 0)
            goto failed;
        done = at;
    }
    return Py_BuildValue("(NnO)", out, done, cut ? Py_True : Py_False);
failed:
    Py_DECREF(out);
    return NULL;
}

/* The whole canonical arguments at data[pos:], `count` at most: the Python parser's loop for
 * the arguments of a command bigger than a read (a BF.MADD or MGET of 200,000 items arrives in
 * ~40 reads and took ~0.6 us an argument there, ~15% of the whole command). It stops at the
 * first argument the bytes end inside or that is not canonical, which the Python path then
 * reads and judges as before. */
static PyObject *arguments(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "arguments(data, pos, count, bulk_max)");
        return NULL;
    }
    if (!PyBytes_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "arguments: data must be bytes");
        return NULL;
    }
    Py_ssize_t at = PyLong_AsSsize_t(args[1]);
    long long count = PyLong_AsLongLong(args[2]);
    long long bulk_max = PyLong_AsLongLong(args[3]);
    if (PyErr_Occurred())
        return NULL;
    const char *data = PyBytes_AS_STRING(args[0]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    if (at < 0 || at > size) {
        PyErr_SetString(PyExc_ValueError, "arguments: pos outside data");
        return NULL;
    }
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (long long i = 0; i < count; i++) { /* bounded: each pass consumes bytes or stops */
        Py_ssize_t start = at;
        long long length = read_argument(data, size, &at, bulk_max);
        if (length < 0) {
            at = start;
            break;
        }
        PyObject *arg = PyBytes_FromStringAndSize(data + at, (Py_ssize_t)length);
        if (arg == NULL || PyList_Append(out, arg) < 0) {
            Py_XDECREF(arg);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(arg);
        at += (Py_ssize_t)length + 2;
    }
    return Py_BuildValue("(Nn)", out, at);
}

static PyMethodDef methods[] = {
    {"commands", (PyCFunction)(void (*)(void))commands, METH_FASTCALL,
     "commands(data, count_max, bulk_max): the whole canonical multibulk commands data starts "
     "with, the bytes they take, and whether the rest is a canonical command cut short."},
    {"arguments", (PyCFunction)(void (*)(void))arguments, METH_FASTCALL,
     "arguments(data, pos, count, bulk_max): the whole canonical arguments at data[pos:] (count "
     "at most) and where they end: up to the first one cut short or not canonical."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_reqparse", "Whole RESP requests read in C.", -1, methods,
};

PyMODINIT_FUNC PyInit__reqparse(void)
{
    return PyModule_Create(&module_def);
}
