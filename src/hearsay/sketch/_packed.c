/* Reads over a cuckoo filter's packed sparse slices (see hearsay.sketch.cuckoo): the walk over
 * an item's places to its first bucket with room. (Reads of a few values or of a window of any
 * slice are the lattice's: hearsay.lattice._sparse.)
 *
 * A cuckoo filter key holds, in each origin's slice, the add count of fingerprint-pair p at
 * slot 2p and its delete count at 2p+1; bucket B owns pairs B*256 .. B*256+255, so slots
 * B*512 .. B*512+511. A bucket's live copies are the sum over its pairs of
 * max(0, sum of adds - sum of deletes), each origin's counts clipped at COUNT_CLIP.
 *
 * A CF.ADD goes to the first of its places (two buckets a sub-filter, oldest sub-filter first)
 * with room; on a filter grown to many sub-filters most places are full, so an add reads dozens
 * of buckets. In Python each read costs microseconds (a search in every slice, then a loop over
 * its pairs); here it is a binary search over the packed bytes and a few additions.
 *
 * A sparse slice's packed form (hearsay.lattice.vector): one byte `w` (value width 1, 2, 4 or
 * 8), then n little-endian uint32 indices (sorted, distinct), then n little-endian values of
 * w bytes. The Python reference is CuckooFilter's _Batch._ensure; the tests hold this to it.
 *
 * A single CF.ADD (add_one) also reads a big slice's overlay: the pairs written since its bytes
 * were packed (MaxVector's _Overlay, a dict whose values are above the bytes' at their indices,
 * with `order`, its indices sorted), looked up in the dict and searched in the list.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "../lattice/_packed_pairs.h"

#define FINGERPRINTS 256
#define BUCKET_SLOTS (2 * FINGERPRINTS)
#define COUNT_CLIP ((int64_t)1 << 40)
#define SOURCES_ON_STACK 64

/* The value at position i, clipped at COUNT_CLIP. */
static int64_t value_at(const Packed *p, Py_ssize_t i)
{
    uint64_t v = read_value(p->held + (Py_ssize_t)p->width * i, p->width);
    return v > (uint64_t)COUNT_CLIP ? COUNT_CLIP : (int64_t)v;
}

/* A slice read in place: its packed pairs and up to two layers of pairs written since, each
 * a dict of index -> value above what the bytes and the layers below hold there, with `order`,
 * its indices sorted: the overlay MaxVector.sparse_view gives, and a run's own counts on top
 * of the writer's slice (add_one's `run`). */
#define LAYERS_MAX 2
typedef struct {
    Packed packed;
    int layers;
    PyObject *layer[LAYERS_MAX]; /* borrowed dicts */
    PyObject *order[LAYERS_MAX]; /* borrowed lists */
} Source;

static int64_t clipped(uint64_t v)
{
    return v > (uint64_t)COUNT_CLIP ? COUNT_CLIP : (int64_t)v;
}

/* A layer's value at `index` into *value: 1 when it holds one, 0 when not, -1 on error. */
static int layer_get(PyObject *layer, uint64_t index, uint64_t *value)
{
    PyObject *key = PyLong_FromUnsignedLongLong(index);
    if (key == NULL)
        return -1;
    PyObject *held = PyDict_GetItemWithError(layer, key); /* borrowed */
    Py_DECREF(key);
    if (held == NULL)
        return PyErr_Occurred() ? -1 : 0;
    *value = PyLong_AsUnsignedLongLong(held);
    return *value == (uint64_t)-1 && PyErr_Occurred() ? -1 : 1;
}

/* The clipped value of `src` at `index` as the bytes and its first `layers` layers hold it
 * (the topmost holding one decides); -1 on error. */
static int64_t value_below(const Source *src, int layers, uint64_t index)
{
    for (int l = layers - 1; l >= 0; l--) {
        uint64_t over;
        int found = layer_get(src->layer[l], index, &over);
        if (found < 0)
            return -1;
        if (found)
            return clipped(over);
    }
    const Packed *p = &src->packed;
    return clipped(packed_value_at(p, index, lower_bound(p, index)));
}

/* The clipped value of `src` at `index`; -1 on error. */
static int64_t source_value(const Source *src, uint64_t index)
{
    return value_below(src, src->layers, index);
}

/* The overlay's first position in `order` whose index is >= `index`; -1 on error. */
static Py_ssize_t order_lower(PyObject *order, uint64_t index)
{
    Py_ssize_t lo = 0, hi = PyList_GET_SIZE(order);
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        uint64_t at = PyLong_AsUnsignedLongLong(PyList_GET_ITEM(order, mid));
        if (at == (uint64_t)-1 && PyErr_Occurred())
            return -1;
        if (at < index)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Live copies of global bucket `bucket` over the sources, overlays included; -1 on error. */
static int64_t source_occupancy(const Source *sources, Py_ssize_t n, uint64_t bucket)
{
    int64_t net[FINGERPRINTS];
    unsigned char touched[FINGERPRINTS];
    int order[FINGERPRINTS];
    int touched_count = 0;
    memset(touched, 0, sizeof touched);
    uint64_t low = bucket * BUCKET_SLOTS, high = low + BUCKET_SLOTS;
    for (Py_ssize_t s = 0; s < n; s++) {
        const Source *src = &sources[s];
        const Packed *p = &src->packed;
        for (Py_ssize_t i = lower_bound(p, low); i < p->count; i++) {
            uint64_t index = read_index(p->bytes + 1 + 4 * i);
            if (index >= high)
                break;
            int slot = (int)(index - low), pair = slot >> 1;
            int64_t count = value_at(p, i);
            if (!touched[pair]) {
                touched[pair] = 1;
                order[touched_count++] = pair;
                net[pair] = 0;
            }
            net[pair] += (slot & 1) ? -count : count;
        }
        /* Each layer's pairs in the bucket replace what the bytes and the layers below hold
         * at their indices: each adds its value less the one below it, so an index several
         * layers hold counts as the topmost's. */
        for (int l = 0; l < src->layers; l++) {
            PyObject *indices = src->order[l];
            Py_ssize_t size = PyList_GET_SIZE(indices), i = order_lower(indices, low);
            if (i < 0)
                return -1;
            for (; i < size; i++) {
                uint64_t index = PyLong_AsUnsignedLongLong(PyList_GET_ITEM(indices, i));
                if (index == (uint64_t)-1 && PyErr_Occurred())
                    return -1;
                if (index >= high)
                    break;
                uint64_t over;
                int found = layer_get(src->layer[l], index, &over);
                if (found < 0)
                    return -1;
                if (!found)
                    continue;
                int64_t base = value_below(src, l, index);
                if (base < 0)
                    return -1;
                int64_t change = clipped(over) - base;
                int slot = (int)(index - low), pair = slot >> 1;
                if (!touched[pair]) {
                    touched[pair] = 1;
                    order[touched_count++] = pair;
                    net[pair] = 0;
                }
                net[pair] += (slot & 1) ? -change : change;
            }
        }
    }
    int64_t live = 0;
    for (int t = 0; t < touched_count; t++)
        if (net[order[t]] > 0)
            live += net[order[t]];
    return live;
}

/* Slices given as packed pairs alone (no overlays) into `sources`; 0 on error. */
static int sources_of(PyObject *list, Source *sources, Py_ssize_t n)
{
    if (!PyList_Check(list)) {
        PyErr_SetString(PyExc_TypeError, "sources must be a list of bytes");
        return 0;
    }
    for (Py_ssize_t s = 0; s < n; s++) {
        if (!packed_of(PyList_GET_ITEM(list, s), &sources[s].packed))
            return 0;
        sources[s].layers = 0;
    }
    return 1;
}

/* Bucket `bucket`'s live copies as the batch holds them in `occupied`, else read from the
 * slices when `readable` (and remembered there), else 0. 0 and an exception on failure. */
static int batch_occupancy(PyObject *occupied, const Source *sources, Py_ssize_t n,
                           uint64_t bucket, int readable, long long *held)
{
    PyObject *key = PyLong_FromUnsignedLongLong(bucket);
    if (key == NULL)
        return 0;
    PyObject *held_obj = PyDict_GetItemWithError(occupied, key); /* borrowed */
    int ok = 1;
    *held = 0;
    if (held_obj != NULL) {
        *held = PyLong_AsLongLong(held_obj);
        ok = !(*held == -1 && PyErr_Occurred());
    } else if (PyErr_Occurred()) {
        ok = 0;
    } else if (readable) {
        *held = source_occupancy(sources, n, bucket);
        PyObject *value = *held < 0 ? NULL : PyLong_FromLongLong(*held);
        ok = value != NULL && PyDict_SetItem(occupied, key, value) == 0;
        Py_XDECREF(value);
    }
    Py_DECREF(key);
    return ok;
}

/* Sub-filter `sub`'s bucket mask and first bucket's global number, from `geometry`'s
 * (mask, start) native uint64 pairs. */
static void sub_geometry(const unsigned char *geometry, Py_ssize_t sub, uint64_t *mask,
                         uint64_t *start)
{
    memcpy(mask, geometry + 16 * sub, 8);
    memcpy(start, geometry + 16 * sub + 8, 8);
}

/* Room for `n` sources: `on_stack` when it holds them, else allocated (NULL and MemoryError
 * when that fails; PyMem_Free it when it is not `on_stack`). */
static Source *sources_room(Py_ssize_t n, Source *on_stack)
{
    if (n <= SOURCES_ON_STACK)
        return on_stack;
    Source *all = PyMem_Malloc(sizeof(Source) * (size_t)n);
    if (all == NULL)
        PyErr_NoMemory();
    return all;
}

/* The walk over an item's places (sub-filter 0..subs-1; in each its first bucket h & mask,
 * then its partner first ^ (alt & mask) unless equal) to the first holding fewer than `size`
 * live copies: 1 with it in *sub, *bucket (global) and *held, 0 when none has room, -1 on
 * error. A bucket's copies are occupied[bucket] when `occupied` (a batch's dict) holds it;
 * otherwise, in a sub-filter below `readable`, read from the sources (and stored in
 * `occupied`), else 0. */
static int walk(const Source *all, Py_ssize_t n, PyObject *occupied, uint64_t h, uint64_t alt,
                const unsigned char *geometry, Py_ssize_t readable, Py_ssize_t subs,
                long long size, Py_ssize_t *sub, uint64_t *bucket, long long *held)
{
    for (*sub = 0; *sub < subs; (*sub)++) {
        uint64_t mask, start;
        sub_geometry(geometry, *sub, &mask, &start);
        uint64_t first = h & mask, second = first ^ (alt & mask);
        for (int which = 0; which < 2; which++) {
            if (which && second == first)
                break;
            *bucket = start + (which ? second : first);
            *held = 0;
            if (occupied == NULL) {
                if (*sub < readable && (*held = source_occupancy(all, n, *bucket)) < 0)
                    return -1;
            } else if (!batch_occupancy(occupied, all, n, *bucket, *sub < readable, held))
                return -1;
            if (*held < size)
                return 1;
        }
    }
    return 0;
}

PyDoc_STRVAR(first_room_doc,
             "first_room(sources, occupied, h, alt, geometry, readable, subs, size, /)\n"
             "The first place of an item with room, as _Batch.add walks them.");

/* first_room(sources: list[bytes], occupied: dict[int, int], h, alt, geometry: bytes,
 *            readable, subs, size) -> (sub, bucket, held) | None
 *
 * Walks an item's places (sub-filter 0..subs-1; in each its first bucket h & mask, then its
 * partner first ^ (alt & mask) unless equal), global bucket = start + local. A bucket's live
 * copies are occupied[bucket] when the batch holds it; otherwise, in a sub-filter below
 * `readable`, read from the slices (and stored in `occupied`), else 0. `occupied` None: a
 * batch of one item, which holds nothing yet and reads each bucket at most once. Returns the first
 * place holding fewer than `size`. `geometry` is each sub-filter's (mask, start) as two
 * native uint64. */
static PyObject *first_room(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 8) {
        PyErr_Format(PyExc_TypeError, "first_room() takes 8 positional arguments, got %zd",
                     nargs);
        return NULL;
    }
    PyObject *occupied = args[1] == Py_None ? NULL : args[1];
    if (occupied != NULL && !PyDict_Check(occupied)) {
        PyErr_SetString(PyExc_TypeError, "occupied must be a dict or None");
        return NULL;
    }
    uint64_t h = PyLong_AsUnsignedLongLong(args[2]);
    if (h == (uint64_t)-1 && PyErr_Occurred())
        return NULL;
    uint64_t alt = PyLong_AsUnsignedLongLong(args[3]);
    if (alt == (uint64_t)-1 && PyErr_Occurred())
        return NULL;
    if (!PyBytes_Check(args[4]) || PyBytes_GET_SIZE(args[4]) % 16) {
        PyErr_SetString(PyExc_TypeError, "geometry must be bytes of (mask, start) pairs");
        return NULL;
    }
    Py_ssize_t readable = PyLong_AsSsize_t(args[5]);
    Py_ssize_t subs = PyLong_AsSsize_t(args[6]);
    long long size = PyLong_AsLongLong(args[7]);
    if (PyErr_Occurred())
        return NULL;
    Py_ssize_t defined = PyBytes_GET_SIZE(args[4]) / 16;
    if (subs > defined)
        subs = defined;
    Source on_stack[SOURCES_ON_STACK];
    Py_ssize_t n = PyList_Check(args[0]) ? PyList_GET_SIZE(args[0]) : 0;
    Source *all = sources_room(n, on_stack);
    if (all == NULL)
        return NULL;
    PyObject *result = NULL;
    if (!sources_of(args[0], all, n))
        goto done;
    Py_ssize_t sub;
    uint64_t bucket;
    long long held;
    int found = walk(all, n, occupied, h, alt, (const unsigned char *)PyBytes_AS_STRING(args[4]),
                     readable, subs, size, &sub, &bucket, &held);
    if (found > 0)
        result = Py_BuildValue("(nKL)", sub, (unsigned long long)bucket, held);
    else if (found == 0)
        result = Py_NewRef(Py_None);
done:
    if (all != on_stack)
        PyMem_Free(all);
    return result;
}

/* A fingerprint-pair's merged net (adds minus deletes at `slot` and `slot + 1`, each origin's
 * counts clipped at COUNT_CLIP) into *net, and the add count of source `own` there (0 for
 * none) into *own_adds when given; 0 on error. */
static int pair_net(const Source *sources, Py_ssize_t n, Py_ssize_t own, uint64_t slot,
                    int64_t *net, int64_t *own_adds)
{
    *net = 0;
    for (Py_ssize_t s = 0; s < n; s++) {
        int64_t adds = source_value(&sources[s], slot), dels = source_value(&sources[s], slot + 1);
        if (adds < 0 || dels < 0)
            return 0;
        *net += adds - dels;
        if (s == own && own_adds != NULL)
            *own_adds = adds;
    }
    return 1;
}

/* An item class's copies (its nets at `slot` and at `partner_slot`, counted once when equal)
 * into *net; 0 on error. */
static int class_net(const Source *sources, Py_ssize_t n, Py_ssize_t own, uint64_t slot,
                     uint64_t partner_slot, int64_t *net, int64_t *own_adds)
{
    if (!pair_net(sources, n, own, slot, net, own_adds))
        return 0;
    if (partner_slot == slot)
        return 1;
    int64_t partner;
    if (!pair_net(sources, n, -1, partner_slot, &partner, NULL))
        return 0;
    *net += partner;
    return 1;
}

/* The highest index a source holds, overlay included (-1 for none); -2 on error. */
static int64_t source_top(const Source *src)
{
    int64_t top = -1;
    const Packed *p = &src->packed;
    if (p->count)
        top = read_index(p->bytes + 1 + 4 * (p->count - 1));
    for (int l = 0; l < src->layers; l++) {
        Py_ssize_t size = PyList_GET_SIZE(src->order[l]);
        if (!size)
            continue;
        uint64_t last = PyLong_AsUnsignedLongLong(PyList_GET_ITEM(src->order[l], size - 1));
        if (last == (uint64_t)-1 && PyErr_Occurred())
            return -2;
        if ((int64_t)last > top)
            top = (int64_t)last;
    }
    return top;
}

/* `layer` (None, or a dict with `order`, a list) as the next layer of `src`; 0 on error. */
static int push_layer(Source *src, PyObject *layer)
{
    if (layer == Py_None)
        return 1;
    if (!PyDict_Check(layer) || src->layers == LAYERS_MAX) {
        PyErr_SetString(PyExc_TypeError, "an overlay must be None or a dict");
        return 0;
    }
    PyObject *order = PyObject_GetAttrString(layer, "order");
    if (order == NULL)
        return 0;
    int is_list = PyList_Check(order);
    Py_DECREF(order); /* (the layer holds it) */
    if (!is_list) {
        PyErr_SetString(PyExc_TypeError, "an overlay's order must be a list");
        return 0;
    }
    src->layer[src->layers] = layer, src->order[src->layers] = order;
    src->layers++;
    return 1;
}

/* sources (bytes) and overlays (None or a dict with `order`) into `out`; 0 on error. */
static int add_sources(PyObject *packed_list, PyObject *overlays, Source *out, Py_ssize_t n)
{
    if (!PyList_Check(packed_list) || !PyList_Check(overlays) ||
        PyList_GET_SIZE(overlays) != n) {
        PyErr_SetString(PyExc_TypeError, "sources and overlays must be lists of one length");
        return 0;
    }
    for (Py_ssize_t s = 0; s < n; s++) {
        if (!packed_of(PyList_GET_ITEM(packed_list, s), &out[s].packed))
            return 0;
        out[s].layers = 0;
        if (!push_layer(&out[s], PyList_GET_ITEM(overlays, s)))
            return 0;
    }
    return 1;
}

PyDoc_STRVAR(add_one_doc,
             "add_one(sources, overlays, own, h, fp, alt, geometry, size, only_new, run, /)\n"
             "CF.ADD (or ADDNX) of one item over sparse slices, as CuckooFilter._add_one "
             "places it.");

/* add_one(sources: list[bytes], overlays: list[dict | None], own, h, fp, alt, geometry: bytes,
 *         size, only_new, run: dict | None) -> (present, slot, raised) | None
 *
 * Each slice is its packed pairs and the overlay of pairs written since (MaxVector.sparse_view);
 * `run` (a dict with `order`, or None), the counts a run raised so far, lies on top of slice
 * `own`.
 * The sub-filters in use are those up to the one holding the highest index of any slice (at
 * least one). With `only_new`, an item whose class holds a copy in any of them is present:
 * (True, 0, 0). Else the first of its places with fewer than `size` live copies (first_room's
 * walk) takes it: its add slot and the add count slice `own` (-1: none) raises there, one
 * past its own plus any deficit an over-delete left in the class: (False, slot, raised).
 * None: no place has room (the batch relocates or opens a sub-filter). */
static PyObject *add_one(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 10) {
        PyErr_Format(PyExc_TypeError, "add_one() takes 10 positional arguments, got %zd", nargs);
        return NULL;
    }
    Py_ssize_t own = PyLong_AsSsize_t(args[2]);
    uint64_t h = PyLong_AsUnsignedLongLong(args[3]);
    uint64_t fp = PyLong_AsUnsignedLongLong(args[4]);
    uint64_t alt = PyLong_AsUnsignedLongLong(args[5]);
    long long size = PyLong_AsLongLong(args[7]);
    int only_new = PyObject_IsTrue(args[8]);
    if (PyErr_Occurred() || only_new < 0)
        return NULL;
    if (!PyBytes_Check(args[6]) || PyBytes_GET_SIZE(args[6]) % 16 ||
        PyBytes_GET_SIZE(args[6]) == 0) {
        PyErr_SetString(PyExc_TypeError, "geometry must be bytes of (mask, start) pairs");
        return NULL;
    }
    if (fp == 0 || fp >= FINGERPRINTS) {
        PyErr_SetString(PyExc_ValueError, "a fingerprint is 1..255");
        return NULL;
    }
    Py_ssize_t defined = PyBytes_GET_SIZE(args[6]) / 16;
    const unsigned char *geometry = (const unsigned char *)PyBytes_AS_STRING(args[6]);
    Source on_stack[SOURCES_ON_STACK];
    Py_ssize_t n = PyList_Check(args[0]) ? PyList_GET_SIZE(args[0]) : 0;
    Source *all = sources_room(n, on_stack);
    if (all == NULL)
        return NULL;
    PyObject *result = NULL;
    if (!add_sources(args[0], args[1], all, n))
        goto done;
    if (args[9] != Py_None) {
        if (own < 0 || own >= n) {
            PyErr_SetString(PyExc_ValueError, "a run's counts need the writer's slice");
            goto done;
        }
        if (!push_layer(&all[own], args[9]))
            goto done;
    }
    /* Sub-filters in use: one past the one holding the highest index of any slice. */
    int64_t top = -1;
    for (Py_ssize_t s = 0; s < n; s++) {
        int64_t last = source_top(&all[s]);
        if (last == -2)
            goto done;
        if (last > top)
            top = last;
    }
    Py_ssize_t subs = 1;
    if (top >= 0) {
        subs = 0;
        for (Py_ssize_t sub = 0; sub < defined; sub++) {
            uint64_t mask, start;
            sub_geometry(geometry, sub, &mask, &start);
            if (start * FINGERPRINTS <= (uint64_t)top / 2)
                subs = sub + 1;
        }
    }
    int64_t net;
    if (only_new) {
        for (Py_ssize_t sub = 0; sub < subs; sub++) {
            uint64_t mask, start;
            sub_geometry(geometry, sub, &mask, &start);
            uint64_t first = start + (h & mask), second = start + ((h & mask) ^ (alt & mask));
            if (!class_net(all, n, -1, 2 * (first * FINGERPRINTS + fp),
                           2 * (second * FINGERPRINTS + fp), &net, NULL))
                goto done;
            if (net > 0) {
                result = Py_BuildValue("(OKK)", Py_True, 0ULL, 0ULL);
                goto done;
            }
        }
    }
    Py_ssize_t sub;
    uint64_t bucket, mask, start;
    long long held;
    int found = walk(all, n, NULL, h, alt, geometry, subs, subs, size, &sub, &bucket, &held);
    if (found < 0)
        goto done;
    if (found) {
        sub_geometry(geometry, sub, &mask, &start);
        uint64_t partner = start + ((bucket - start) ^ (alt & mask));
        uint64_t slot = 2 * (bucket * FINGERPRINTS + fp);
        int64_t own_adds = 0;
        if (!class_net(all, n, own, slot, 2 * (partner * FINGERPRINTS + fp), &net, &own_adds))
            goto done;
        uint64_t raised = (uint64_t)own_adds + 1 + (uint64_t)(net < 0 ? -net : 0);
        result = Py_BuildValue("(OKK)", Py_False, (unsigned long long)slot,
                               (unsigned long long)raised);
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    if (all != on_stack)
        PyMem_Free(all);
    return result;
}

static PyMethodDef methods[] = {
    {"first_room", (PyCFunction)(void (*)(void))first_room, METH_FASTCALL, first_room_doc},
    {"add_one", (PyCFunction)(void (*)(void))add_one, METH_FASTCALL, add_one_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "hearsay.sketch._packed",
    "Reads over a sketch's packed sparse slices.",
    0,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__packed(void)
{
    return PyModuleDef_Init(&module);
}
