/* HeavyKeeper's rows for one item of a TOPK.ADD / INCRBY (see hearsay.sketch.topk).
 *
 * Each row's bucket is three slots of the writer's own slice: fingerprint, increments, decays,
 * each value `generation << 32 | payload`. The item's increment goes into its bucket when the
 * bucket holds its fingerprint (or is empty: taken over); else it decays the other item's count
 * by one with probability decay ** count per unit, trials drawn at once (geometric), and takes
 * the bucket over when the count reaches zero. This is _Writer's row loop of topk.py, step for
 * step (the same coin flips from the same splitmix64 words, the same doubles: libm's log1p and
 * pow), so a run replays exactly; tests/support/topk_reference.py holds the Python statement
 * the tests compare it with.
 *
 * Why C: a TOPK.ADD walks `depth` rows (7 by default), each a dozen Python operations on
 * 64-bit ints and a coin flip or two; here it is a few dozen machine instructions a row.
 *
 * The slots' values are read from and written to the run's cache (a dict: slot -> value;
 * every bucket slot is in it, the caller read them all first) and every raised slot is
 * appended to the run's pairs (two lists), in the order the Python statement writes them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define LOW32 0xFFFFFFFFull
#define COUNT_MAX 0xFFFFFFFFull            /* topk.COUNT_MAX */
#define GENERATION_MAX 0x7FFFFFFFull       /* topk.GENERATION_MAX */
#define DECAYS_PER_ROW_MAX 1024            /* topk.DECAYS_PER_ROW_MAX */
#define POWERS 256
#define UNIT (1.0 / 9007199254740992.0) /* 2**-53 */

static uint64_t mix64(uint64_t h, uint64_t step)
{
    uint64_t z = h + 0x9E3779B97F4A7C15ull * step;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct {
    PyObject *cache, *indices, *values;
} Run;

static int cached(const Run *run, uint64_t slot, uint64_t *value)
{
    PyObject *key = PyLong_FromUnsignedLongLong(slot);
    if (key == NULL)
        return 0;
    PyObject *held = PyDict_GetItemWithError(run->cache, key); /* borrowed */
    Py_DECREF(key);
    if (held == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_KeyError, "a bucket slot was not read before the rows");
        return 0;
    }
    *value = PyLong_AsUnsignedLongLong(held);
    return !(*value == (uint64_t)-1 && PyErr_Occurred());
}

/* cache[slot] = value and the pair appended. */
static int store(const Run *run, uint64_t slot, uint64_t value)
{
    PyObject *key = PyLong_FromUnsignedLongLong(slot);
    PyObject *held = PyLong_FromUnsignedLongLong(value);
    int ok = key != NULL && held != NULL && PyDict_SetItem(run->cache, key, held) == 0 &&
             PyList_Append(run->indices, key) == 0 && PyList_Append(run->values, held) == 0;
    Py_XDECREF(key);
    Py_XDECREF(held);
    return ok;
}

/* _Own.put: the slot raised to `value` when that is above what it holds. */
static int put(const Run *run, uint64_t slot, uint64_t value)
{
    uint64_t held;
    if (!cached(run, slot, &held))
        return 0;
    return value > held ? store(run, slot, value) : 1;
}

/* _Writer._take: the bucket rewritten under a new generation to hold `fp` with `count`;
 * *taken 0 when its generations are used up. */
static int take(const Run *run, uint64_t slot, uint64_t newest, uint64_t fp, uint64_t count,
                int *taken, uint64_t *result)
{
    *taken = 0;
    if (newest >= GENERATION_MAX)
        return 1;
    uint64_t tag = (newest + 1) << 32;
    if (count > COUNT_MAX)
        count = COUNT_MAX;
    if (!store(run, slot, tag | fp) || !store(run, slot + 1, tag | count))
        return 0;
    *taken = 1;
    *result = count;
    return 1;
}

/* One row (_Writer._bucket_add): *holds 1 and *count the bucket's count after the increment
 * when the item holds the bucket, else *holds 0. */
static int bucket_add(const Run *run, uint64_t slot, uint64_t fp, uint64_t increment,
                      uint64_t seed, const double *powers, double decay, long long *decays_left,
                      int *holds, uint64_t *count_out)
{
    uint64_t fp_value, up_value, down_value;
    if (!cached(run, slot, &fp_value) || !cached(run, slot + 1, &up_value) ||
        !cached(run, slot + 2, &down_value))
        return 0;
    uint64_t generation = fp_value >> 32;
    uint64_t up = (up_value >> 32) == generation ? up_value & LOW32 : 0;
    uint64_t down = (down_value >> 32) == generation ? down_value & LOW32 : 0;
    uint64_t count = up > down ? up - down : 0;
    uint64_t newest = generation;
    if ((up_value >> 32) > newest)
        newest = up_value >> 32;
    if ((down_value >> 32) > newest)
        newest = down_value >> 32;
    *holds = 0;
    if (generation && (fp_value & LOW32) == fp) {
        if (up + increment <= COUNT_MAX) {
            if (!put(run, slot + 1, generation << 32 | (up + increment)))
                return 0;
            *holds = 1;
            *count_out = count + increment;
            return 1;
        }
        return take(run, slot, newest, fp, count + increment, holds, count_out);
    }
    if (count == 0)
        return take(run, slot, newest, fp, increment, holds, count_out);
    long long remaining = (long long)increment, decays = 0, draw = 0;
    long long cap = *decays_left < DECAYS_PER_ROW_MAX ? *decays_left : DECAYS_PER_ROW_MAX;
    while (remaining > 0 && decays < cap) {
        long long at = (long long)count - decays, trials;
        double p = at < POWERS ? powers[at] : pow(decay, (double)at);
        if (p >= 1.0) {
            trials = at;
            if (remaining < trials)
                trials = remaining;
            if (cap - decays < trials)
                trials = cap - decays;
            decays += trials - 1;
        } else {
            draw += 1;
            double u = (double)(mix64(seed, (uint64_t)draw) >> 11) * UNIT;
            double step = log1p(-p);
            double failures = step != 0.0 ? log1p(-u) / step : INFINITY;
            if (failures >= (double)remaining)
                break;
            trials = (long long)failures + 1;
        }
        remaining -= trials;
        decays += 1;
        if (decays == (long long)count) {
            *decays_left -= decays;
            return take(run, slot, newest, fp, (uint64_t)remaining + 1, holds, count_out);
        }
    }
    *decays_left -= decays;
    if (decays)
        return put(run, slot + 2, generation << 32 | (down + (uint64_t)decays));
    return 1;
}

PyDoc_STRVAR(rows_doc,
             "rows(cache, indices, values, slots, fp, increment, seed, decays_left, powers, "
             "decay, /)\n"
             "One item's increment through every row: (best count, decays left).");

static PyObject *rows(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 10) {
        PyErr_Format(PyExc_TypeError, "rows() takes 10 positional arguments, got %zd", nargs);
        return NULL;
    }
    Run run = {args[0], args[1], args[2]};
    if (!PyDict_Check(run.cache) || !PyList_Check(run.indices) || !PyList_Check(run.values) ||
        !PyList_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "rows(dict, list, list, list, ...)");
        return NULL;
    }
    uint64_t fp = PyLong_AsUnsignedLongLong(args[4]);
    uint64_t increment = PyLong_AsUnsignedLongLong(args[5]);
    uint64_t seed = PyLong_AsUnsignedLongLong(args[6]);
    long long decays_left = PyLong_AsLongLong(args[7]);
    double decay = PyFloat_AsDouble(args[9]);
    if (PyErr_Occurred())
        return NULL;
    if (fp > LOW32 || increment > COUNT_MAX) {
        PyErr_SetString(PyExc_ValueError, "fingerprint or increment out of range");
        return NULL;
    }
    if (!PyBytes_Check(args[8]) || PyBytes_GET_SIZE(args[8]) != POWERS * sizeof(double)) {
        PyErr_SetString(PyExc_TypeError, "powers must be 256 native doubles");
        return NULL;
    }
    double powers[POWERS];
    memcpy(powers, PyBytes_AS_STRING(args[8]), sizeof powers);
    uint64_t best = 0;
    Py_ssize_t depth = PyList_GET_SIZE(args[3]);
    for (Py_ssize_t row = 0; row < depth; row++) {
        uint64_t slot = PyLong_AsUnsignedLongLong(PyList_GET_ITEM(args[3], row));
        if (slot == (uint64_t)-1 && PyErr_Occurred())
            return NULL;
        int holds;
        uint64_t count = 0;
        if (!bucket_add(&run, slot, fp, increment, mix64(seed, (uint64_t)row + 1), powers, decay,
                        &decays_left, &holds, &count))
            return NULL;
        if (holds && count > best)
            best = count;
    }
    if (best > COUNT_MAX)
        best = COUNT_MAX;
    return Py_BuildValue("(KL)", (unsigned long long)best, decays_left);
}

static PyMethodDef methods[] = {
    {"rows", (PyCFunction)(void (*)(void))rows, METH_FASTCALL, rows_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "hearsay.sketch._heavykeeper",
    "HeavyKeeper's rows for one item of a TOPK.ADD / INCRBY.",
    0,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__heavykeeper(void)
{
    return PyModuleDef_Init(&module);
}
