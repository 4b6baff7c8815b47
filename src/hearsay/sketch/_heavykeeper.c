/* A TOPK.ADD / INCRBY on the writer's own slice (see hearsay.sketch.topk): HeavyKeeper's rows
 * and the top-k list, item by item, call by call.
 *
 * Each row's bucket is three slots of the writer's own slice: fingerprint, increments, decays,
 * each value `generation << 32 | payload`. The item's increment goes into its bucket when the
 * bucket holds its fingerprint (or is empty: taken over); else it decays the other item's count
 * by one with probability decay ** count per unit, trials drawn at once (geometric), and takes
 * the bucket over when the count reaches zero. The list is `k` positions (length, count,
 * fingerprint, then the item's bytes four to a slot); an item whose best count reaches the
 * list's minimum enters at the minimum's position, a listed item's count becomes its new count.
 *
 * This is, step for step, the Python statement in tests/support/topk_reference.py (the same
 * coin flips from the same splitmix64 words, the same doubles: libm's log1p and pow; the same
 * slots written in the same order; the same items expelled), which the tests hold it to.
 *
 * Why C: a TOPK.ADD walked `depth` rows of a dozen Python operations each, decoded the list's
 * `k` positions into objects and kept a heap of them: ~15 us a call, against ~2 us here.
 *
 * Reads: the caller passes its own slice's packed sparse pairs (bytes: a width byte, the
 * indices as little-endian uint32, the values as little-endian ints of that width; searched
 * here) or `read(indices) -> values` (absent = 0: a slice with an overlay, or none). The list's
 * headers, slot 0 and every item's bucket slots are read before the first item; a listed item's
 * bytes and the slots a new item's bytes go to are read when first needed. What was read or
 * written is kept in a hash table for the whole call or run. (Through `read`, the first read
 * built ~50 ints, called Python and converted ~50 back: TOPK.ADD to one key at -P 1 on a lone
 * node went from 30.5-34.3k to 36.1-40.7k a second, four runs each, once the C searched.)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../lattice/_packed_pairs.h"

#define LOW32 0xFFFFFFFFull
#define COUNT_MAX 0xFFFFFFFFull            /* topk.COUNT_MAX */
#define GENERATION_MAX 0x7FFFFFFFull       /* topk.GENERATION_MAX */
#define DECAYS_PER_ROW_MAX 1024            /* topk.DECAYS_PER_ROW_MAX */
#define DECAYS_PER_CALL_MAX 65536          /* topk.DECAYS_PER_CALL_MAX */
#define LIST_BASE 0x80000000ull            /* schemas.TOPK_LIST_BASE */
#define POSITION_SLOTS 16384ull            /* schemas.TOPK_POSITION_SLOTS */
#define ITEM_BYTES_MAX (4 * (POSITION_SLOTS - 3)) /* topk.ITEM_BYTES_MAX */
#define K_MAX 10000                        /* schemas.TOPK_K_MAX */
#define TICKS 0
#define TICKS_MAX 0x7FFFFFFFFFFFFFFFull /* a vector value's largest: the count stops there */
#define BUCKETS 8
#define GOLDEN 0x9E3779B97F4A7C15ull
#define POWERS 256
#define UNIT (1.0 / 9007199254740992.0) /* 2**-53 */

static uint64_t mix64(uint64_t h, uint64_t step)
{
    uint64_t z = h + GOLDEN * step;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* -- the run's slots: slot -> value (open addressing), and the pairs written, in order ------- */

typedef struct {
    uint64_t *keys, *values;
    unsigned char *used;
    size_t mask, count;
    uint64_t *out_slots, *out_values;
    size_t out_count, out_capacity;
    PyObject *read; /* read(list of slots) -> list of values; NULL: every slot must be held */
    Packed packed; /* or the slice's packed pairs (read is then NULL; bytes NULL: none) */
} Run;

static size_t slot_hash(uint64_t slot, size_t mask)
{
    return (size_t)((slot * GOLDEN) >> 17) & mask;
}

static int run_init(Run *run, size_t expected, PyObject *read)
{
    memset(run, 0, sizeof *run);
    size_t size = 64;
    while (size < 2 * expected + 16)
        size <<= 1;
    run->keys = PyMem_Malloc(size * sizeof(uint64_t));
    run->values = PyMem_Malloc(size * sizeof(uint64_t));
    run->used = PyMem_Calloc(size, 1);
    run->mask = size - 1;
    run->read = read;
    if (run->keys == NULL || run->values == NULL || run->used == NULL) {
        PyErr_NoMemory();
        return 0;
    }
    return 1;
}

static void run_free(Run *run)
{
    PyMem_Free(run->keys);
    PyMem_Free(run->values);
    PyMem_Free(run->used);
    PyMem_Free(run->out_slots);
    PyMem_Free(run->out_values);
}

/* The held value's place, or NULL. */
static uint64_t *held_at(const Run *run, uint64_t slot)
{
    for (size_t at = slot_hash(slot, run->mask);; at = (at + 1) & run->mask) {
        if (!run->used[at])
            return NULL;
        if (run->keys[at] == slot)
            return &run->values[at];
    }
}

static int hold(Run *run, uint64_t slot, uint64_t value)
{
    uint64_t *held = held_at(run, slot);
    if (held != NULL) {
        *held = value;
        return 1;
    }
    if (2 * (run->count + 1) > run->mask + 1) { /* grow: keep the load at most one half */
        size_t old_size = run->mask + 1, size = 2 * old_size;
        uint64_t *keys = run->keys, *values = run->values;
        unsigned char *used = run->used;
        run->keys = PyMem_Malloc(size * sizeof(uint64_t));
        run->values = PyMem_Malloc(size * sizeof(uint64_t));
        run->used = PyMem_Calloc(size, 1);
        if (run->keys == NULL || run->values == NULL || run->used == NULL) {
            PyMem_Free(run->keys);
            PyMem_Free(run->values);
            PyMem_Free(run->used);
            run->keys = keys, run->values = values, run->used = used;
            PyErr_NoMemory();
            return 0;
        }
        run->mask = size - 1;
        for (size_t i = 0; i < old_size; i++) {
            if (!used[i])
                continue;
            size_t at = slot_hash(keys[i], run->mask);
            while (run->used[at])
                at = (at + 1) & run->mask;
            run->used[at] = 1, run->keys[at] = keys[i], run->values[at] = values[i];
        }
        PyMem_Free(keys);
        PyMem_Free(values);
        PyMem_Free(used);
    }
    size_t at = slot_hash(slot, run->mask);
    while (run->used[at])
        at = (at + 1) & run->mask;
    run->used[at] = 1, run->keys[at] = slot, run->values[at] = value;
    run->count++;
    return 1;
}

/* Reads the slots not held yet: from the packed pairs, or in one call of `read`. */
static int read_missing(Run *run, const uint64_t *slots, size_t n)
{
    if (run->packed.bytes != NULL) {
        Py_ssize_t finger = 0;
        for (size_t i = 0; i < n; i++) {
            uint64_t slot = slots[i];
            if (held_at(run, slot) == NULL &&
                !hold(run, slot, packed_get_from(&run->packed, slot, &finger)))
                return 0;
        }
        return 1;
    }
    PyObject *wanted = PyList_New(0);
    if (wanted == NULL)
        return 0;
    int ok = 1;
    for (size_t i = 0; ok && i < n; i++) {
        if (held_at(run, slots[i]) != NULL)
            continue;
        PyObject *slot = PyLong_FromUnsignedLongLong(slots[i]);
        ok = slot != NULL && PyList_Append(wanted, slot) == 0;
        Py_XDECREF(slot);
    }
    Py_ssize_t count = ok ? PyList_GET_SIZE(wanted) : 0;
    if (ok && count) {
        if (run->read == NULL) {
            PyErr_SetString(PyExc_KeyError, "a bucket slot was not read before the rows");
            ok = 0;
        } else {
            PyObject *got = PyObject_CallOneArg(run->read, wanted);
            PyObject *fast = got == NULL ? NULL : PySequence_Fast(got, "read() must give a list");
            Py_XDECREF(got);
            ok = fast != NULL;
            if (ok && PySequence_Fast_GET_SIZE(fast) != count) {
                PyErr_SetString(PyExc_ValueError, "read() gave another number of values");
                ok = 0;
            }
            for (Py_ssize_t i = 0; ok && i < count; i++) {
                uint64_t slot = PyLong_AsUnsignedLongLong(PyList_GET_ITEM(wanted, i));
                uint64_t value = PyLong_AsUnsignedLongLong(PySequence_Fast_GET_ITEM(fast, i));
                ok = !PyErr_Occurred() && hold(run, slot, value);
            }
            Py_XDECREF(fast);
        }
    }
    Py_DECREF(wanted);
    return ok;
}

static int get(Run *run, uint64_t slot, uint64_t *value)
{
    uint64_t *held = held_at(run, slot);
    if (held == NULL) {
        if (!read_missing(run, &slot, 1))
            return 0;
        held = held_at(run, slot);
    }
    *value = *held;
    return 1;
}

/* The slot set to `value` and the pair appended. */
static int store(Run *run, uint64_t slot, uint64_t value)
{
    if (run->out_count == run->out_capacity) {
        size_t capacity = run->out_capacity ? 2 * run->out_capacity : 64;
        uint64_t *slots = PyMem_Realloc(run->out_slots, capacity * sizeof(uint64_t));
        if (slots == NULL) {
            PyErr_NoMemory();
            return 0;
        }
        run->out_slots = slots;
        uint64_t *values = PyMem_Realloc(run->out_values, capacity * sizeof(uint64_t));
        if (values == NULL) {
            PyErr_NoMemory();
            return 0;
        }
        run->out_values = values;
        run->out_capacity = capacity;
    }
    run->out_slots[run->out_count] = slot;
    run->out_values[run->out_count++] = value;
    return hold(run, slot, value);
}

/* _Own.put: the slot raised to `value` when that is above what it holds. */
static int put(Run *run, uint64_t slot, uint64_t value)
{
    uint64_t held;
    if (!get(run, slot, &held))
        return 0;
    return value > held ? store(run, slot, value) : 1;
}

/* -- HeavyKeeper's rows --------------------------------------------------------------------- */

/* The bucket rewritten under a new generation to hold `fp` with `count`; *taken 0 when its
 * generations are used up. */
static int take(Run *run, uint64_t slot, uint64_t newest, uint64_t fp, uint64_t count,
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

/* One row: *holds 1 and *count the bucket's count after the increment when the item holds
 * the bucket, else *holds 0. */
static int bucket_add(Run *run, uint64_t slot, uint64_t fp, uint64_t increment, uint64_t seed,
                      const double *powers, double decay, long long *decays_left, int *holds,
                      uint64_t *count_out)
{
    uint64_t fp_value, up_value, down_value;
    if (!get(run, slot, &fp_value) || !get(run, slot + 1, &up_value) ||
        !get(run, slot + 2, &down_value))
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

/* The item's increment through the rows whose buckets start at `slots`: *best is the best
 * count over the rows it holds. */
static int item_rows(Run *run, const uint64_t *slots, Py_ssize_t depth, uint64_t fp,
                     uint64_t increment, uint64_t seed, const double *powers, double decay,
                     long long *decays_left, uint64_t *best)
{
    *best = 0;
    for (Py_ssize_t row = 0; row < depth; row++) {
        int holds;
        uint64_t count = 0;
        if (!bucket_add(run, slots[row], fp, increment, mix64(seed, (uint64_t)row + 1), powers,
                        decay, decays_left, &holds, &count))
            return 0;
        if (holds && count > *best)
            *best = count;
    }
    if (*best > COUNT_MAX)
        *best = COUNT_MAX;
    return 1;
}

/* -- the list -------------------------------------------------------------------------------- */

typedef struct {
    uint64_t generation, count, fp, length, newest;
    uint64_t order;  /* when it (last) took its fingerprint: listed items are compared in it */
    PyObject *item;  /* owned; NULL: not read yet */
    Py_ssize_t next; /* the next position in its fingerprint's chain, or -1 */
} Position;

typedef struct {
    Position *at;
    Py_ssize_t k;
    Py_ssize_t *heap, *where; /* a min-heap of positions by (count, occupied, index) */
    Py_ssize_t *chains;       /* per fingerprint hash: the first position, or -1 */
    size_t chain_mask;
    uint64_t next_order;
} List;

static uint64_t position_slot(Py_ssize_t at)
{
    return LIST_BASE + POSITION_SLOTS * (uint64_t)at;
}

static int lower(const List *list, Py_ssize_t a, Py_ssize_t b)
{
    const Position *x = &list->at[a], *y = &list->at[b];
    if (x->count != y->count)
        return x->count < y->count;
    if ((x->generation > 0) != (y->generation > 0))
        return x->generation == 0;
    return a < b;
}

static void heap_swap(List *list, Py_ssize_t i, Py_ssize_t j)
{
    Py_ssize_t a = list->heap[i], b = list->heap[j];
    list->heap[i] = b, list->heap[j] = a;
    list->where[b] = i, list->where[a] = j;
}

/* The heap's entry `i` moved down below its lower children. */
static void sift_down(List *list, Py_ssize_t i)
{
    for (;;) {
        Py_ssize_t least = i, left = 2 * i + 1, right = left + 1;
        if (left < list->k && lower(list, list->heap[left], list->heap[least]))
            least = left;
        if (right < list->k && lower(list, list->heap[right], list->heap[least]))
            least = right;
        if (least == i)
            return;
        heap_swap(list, i, least);
        i = least;
    }
}

/* Position `at`'s count or occupancy changed: back to its place in the heap. */
static void heap_fix(List *list, Py_ssize_t at)
{
    Py_ssize_t i = list->where[at];
    while (i > 0 && lower(list, list->heap[i], list->heap[(i - 1) / 2])) {
        heap_swap(list, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    sift_down(list, i);
}

static size_t chain_of(const List *list, uint64_t fp)
{
    return (size_t)((fp * GOLDEN) >> 32) & list->chain_mask;
}

static void chain_add(List *list, Py_ssize_t at)
{
    size_t c = chain_of(list, list->at[at].fp);
    list->at[at].next = list->chains[c];
    list->chains[c] = at;
}

static void chain_remove(List *list, Py_ssize_t at)
{
    Py_ssize_t *link = &list->chains[chain_of(list, list->at[at].fp)];
    while (*link != -1 && *link != at)
        link = &list->at[*link].next;
    if (*link == at)
        *link = list->at[at].next;
    list->at[at].next = -1;
}

static void list_free(List *list)
{
    if (list->at != NULL)
        for (Py_ssize_t i = 0; i < list->k; i++)
            Py_XDECREF(list->at[i].item);
    PyMem_Free(list->at);
    PyMem_Free(list->heap);
    PyMem_Free(list->where);
    PyMem_Free(list->chains);
}

/* The `k` positions from their headers (held in the run): an incomplete one reads as empty,
 * keeping its newest generation so a rewrite goes past it. */
static int list_init(List *list, Run *run, Py_ssize_t k)
{
    memset(list, 0, sizeof *list);
    list->k = k;
    size_t chains = 16;
    while (chains < 2 * (size_t)k)
        chains <<= 1;
    list->chain_mask = chains - 1;
    list->at = PyMem_Calloc((size_t)k, sizeof(Position));
    list->heap = PyMem_Malloc((size_t)k * sizeof(Py_ssize_t));
    list->where = PyMem_Malloc((size_t)k * sizeof(Py_ssize_t));
    list->chains = PyMem_Malloc(chains * sizeof(Py_ssize_t));
    if (list->at == NULL || list->heap == NULL || list->where == NULL || list->chains == NULL) {
        PyErr_NoMemory();
        return 0;
    }
    for (size_t c = 0; c < chains; c++)
        list->chains[c] = -1;
    for (Py_ssize_t at = 0; at < k; at++) {
        uint64_t base = position_slot(at), length_v, count_v, fp_v;
        if (!get(run, base, &length_v) || !get(run, base + 1, &count_v) ||
            !get(run, base + 2, &fp_v))
            return 0;
        Position *p = &list->at[at];
        uint64_t generation = length_v >> 32;
        p->next = -1;
        p->order = (uint64_t)at;
        if (generation && count_v >> 32 == generation && fp_v >> 32 == generation) {
            p->generation = p->newest = generation;
            p->count = count_v & LOW32, p->fp = fp_v & LOW32, p->length = length_v & LOW32;
        } else {
            uint64_t newest = generation;
            if (count_v >> 32 > newest)
                newest = count_v >> 32;
            if (fp_v >> 32 > newest)
                newest = fp_v >> 32;
            p->newest = newest;
        }
        list->heap[at] = at, list->where[at] = at;
    }
    /* chains in reverse so each is in index order (a chain is searched by order anyway) */
    for (Py_ssize_t at = k - 1; at >= 0; at--)
        if (list->at[at].generation)
            chain_add(list, at);
    list->next_order = (uint64_t)k;
    for (Py_ssize_t i = k / 2 - 1; i >= 0; i--) /* heapify */
        sift_down(list, i);
    return 1;
}

/* The slots of position `at`'s first `words` item words (PyMem_Free them). */
static uint64_t *word_slots(Py_ssize_t at, size_t words)
{
    uint64_t *slots = PyMem_Malloc((words + 1) * sizeof(uint64_t));
    if (slots == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    for (size_t i = 0; i < words; i++)
        slots[i] = position_slot(at) + 3 + i;
    return slots;
}

/* The bytes position `at` holds (b"" when its words are not all of its generation: it was
 * never completely written, so it compares unequal to every item); borrowed. */
static PyObject *item_of(List *list, Run *run, Py_ssize_t at)
{
    Position *p = &list->at[at];
    if (p->item != NULL)
        return p->item;
    if (p->length > ITEM_BYTES_MAX) {
        p->item = PyBytes_FromStringAndSize(NULL, 0);
        return p->item;
    }
    size_t words = (size_t)(p->length + 3) / 4;
    uint64_t *slots = word_slots(at, words);
    if (slots == NULL || !read_missing(run, slots, words)) {
        PyMem_Free(slots);
        return NULL;
    }
    PyObject *item = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)p->length);
    if (item != NULL) {
        unsigned char *bytes = (unsigned char *)PyBytes_AS_STRING(item);
        for (size_t i = 0; i < words; i++) {
            uint64_t word = *held_at(run, slots[i]);
            if (word >> 32 != p->generation) {
                Py_SETREF(item, PyBytes_FromStringAndSize(NULL, 0));
                break;
            }
            for (size_t b = 0; b < 4 && 4 * i + b < p->length; b++)
                bytes[4 * i + b] = (unsigned char)(word >> (8 * b));
        }
    }
    PyMem_Free(slots);
    p->item = item;
    return item;
}

/* The first listed position (in the order positions took their fingerprints) holding `item`,
 * -1 when none does; -2 on an error. */
static Py_ssize_t listed(List *list, Run *run, uint64_t fp, PyObject *item)
{
    Py_ssize_t found = -1;
    uint64_t found_order = 0;
    Py_ssize_t length = PyBytes_GET_SIZE(item);
    for (Py_ssize_t at = list->chains[chain_of(list, fp)]; at != -1; at = list->at[at].next) {
        Position *p = &list->at[at];
        if (p->fp != fp || p->length != (uint64_t)length || (found != -1 && p->order > found_order))
            continue;
        PyObject *held = item_of(list, run, at);
        if (held == NULL)
            return -2;
        if (PyBytes_GET_SIZE(held) == length &&
            memcmp(PyBytes_AS_STRING(held), PyBytes_AS_STRING(item), (size_t)length) == 0)
            found = at, found_order = p->order;
    }
    return found;
}

/* Position `at` rewritten to hold `item` under a new generation. */
static int publish(List *list, Run *run, Py_ssize_t at, PyObject *item, uint64_t fp,
                   uint64_t count)
{
    Position *p = &list->at[at];
    uint64_t generation = p->newest + 1, tag = generation << 32, base = position_slot(at);
    size_t length = (size_t)PyBytes_GET_SIZE(item), words = (length + 3) / 4;
    uint64_t *slots = word_slots(at, words);
    int ok = slots != NULL && read_missing(run, slots, words) && put(run, base, tag | length) &&
             put(run, base + 1, tag | count) && put(run, base + 2, tag | fp);
    const unsigned char *bytes = (const unsigned char *)PyBytes_AS_STRING(item);
    for (size_t i = 0; ok && i < words; i++) {
        uint64_t word = 0;
        for (size_t b = 0; b < 4 && 4 * i + b < length; b++)
            word |= (uint64_t)bytes[4 * i + b] << (8 * b);
        ok = put(run, slots[i], tag | word);
    }
    PyMem_Free(slots);
    if (!ok)
        return 0;
    p->generation = p->newest = generation;
    p->count = count, p->fp = fp, p->length = length;
    Py_INCREF(item);
    Py_XSETREF(p->item, item);
    heap_fix(list, at);
    return 1;
}

/* One item's increment: *expelled the item expelled from the list (a new reference), or
 * NULL when none was. */
static int add_one(List *list, Run *run, PyObject *item, uint64_t h, uint64_t increment,
                   const uint64_t *slots, Py_ssize_t depth, const double *powers, double decay,
                   long long *decays_left, PyObject **expelled)
{
    *expelled = NULL;
    uint64_t fp = h & LOW32, ticks, best;
    if (!get(run, TICKS, &ticks) || (ticks < TICKS_MAX && !put(run, TICKS, ticks + 1)))
        return 0;
    uint64_t seed = h ^ (ticks * GOLDEN);
    if (!item_rows(run, slots, depth, fp, increment, seed, powers, decay, decays_left, &best))
        return 0;
    Py_ssize_t at = list->heap[0];
    if (best < list->at[at].count)
        return 1;
    Py_ssize_t found = listed(list, run, fp, item);
    if (found == -2)
        return 0;
    if (found >= 0) {
        Position *p = &list->at[found];
        if (best > p->count) { /* counts rise in place */
            if (!put(run, position_slot(found) + 1, p->generation << 32 | best))
                return 0;
            p->count = best;
            heap_fix(list, found);
        } else if (best < p->count && p->newest < GENERATION_MAX) {
            /* RedisBloom takes the new count even when lower: a new generation */
            return publish(list, run, found, item, fp, best);
        }
        return 1;
    }
    Position *victim = &list->at[at];
    if (victim->newest >= GENERATION_MAX)
        return 1;
    if (victim->generation) {
        PyObject *held = item_of(list, run, at);
        if (held == NULL)
            return 0;
        Py_INCREF(held);
        *expelled = held;
        chain_remove(list, at);
    }
    if (!publish(list, run, at, item, fp, best)) {
        Py_CLEAR(*expelled);
        return 0;
    }
    victim->order = list->next_order++;
    chain_add(list, at);
    return 1;
}

static int as_doubles(PyObject *powers, double *out)
{
    if (!PyBytes_Check(powers) || PyBytes_GET_SIZE(powers) != POWERS * sizeof(double)) {
        PyErr_SetString(PyExc_TypeError, "powers must be 256 native doubles");
        return 0;
    }
    memcpy(out, PyBytes_AS_STRING(powers), POWERS * sizeof(double));
    return 1;
}

static PyObject *pairs_of(const Run *run, Py_ssize_t from)
{
    Py_ssize_t n = (Py_ssize_t)run->out_count - from;
    PyObject *slots = PyList_New(n), *values = PyList_New(n);
    if (slots == NULL || values == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *slot = PyLong_FromUnsignedLongLong(run->out_slots[from + i]);
        PyObject *value = PyLong_FromUnsignedLongLong(run->out_values[from + i]);
        if (slot == NULL || value == NULL) {
            Py_XDECREF(slot);
            Py_XDECREF(value);
            goto fail;
        }
        PyList_SET_ITEM(slots, i, slot);
        PyList_SET_ITEM(values, i, value);
    }
    return Py_BuildValue("(NN)", slots, values);
fail:
    Py_XDECREF(slots);
    Py_XDECREF(values);
    return NULL;
}

PyDoc_STRVAR(add_doc,
             "add(read, items, hashes, increments, k, width, depth, powers, decay, call_ends, /)\n"
             "TOPK.ADD / INCRBY calls in turn on the writer's own slice: ((slots, values) "
             "written, per item the item expelled or None).");

static PyObject *add(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 10) {
        PyErr_Format(PyExc_TypeError, "add() takes 10 positional arguments, got %zd", nargs);
        return NULL;
    }
    PyObject *read = args[0], *items = args[1], *hashes = args[2], *increments = args[3];
    PyObject *ends = args[9];
    if ((!PyCallable_Check(read) && !PyBytes_Check(read)) || !PyList_Check(items) ||
        !PyList_Check(hashes) || !PyList_Check(increments) || !PyList_Check(ends)) {
        PyErr_SetString(PyExc_TypeError, "add(bytes or callable, list, list, list, ..., list)");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(items);
    Py_ssize_t k = PyLong_AsSsize_t(args[4]), depth = PyLong_AsSsize_t(args[6]);
    unsigned long long width = PyLong_AsUnsignedLongLong(args[5]);
    double decay = PyFloat_AsDouble(args[8]);
    double powers[POWERS];
    if (PyErr_Occurred() || !as_doubles(args[7], powers))
        return NULL;
    if (PyList_GET_SIZE(hashes) != n || PyList_GET_SIZE(increments) != n || k < 1 ||
        k > K_MAX || depth < 1 || depth > 64 || width < 1 ||
        8 + 3 * (unsigned __int128)width * (unsigned __int128)depth > LIST_BASE) {
        PyErr_SetString(PyExc_ValueError, "add(): mismatched items or a shape out of range");
        return NULL;
    }
    uint64_t *h = PyMem_Malloc(((size_t)n + 1) * sizeof(uint64_t));
    uint64_t *inc = PyMem_Malloc(((size_t)n + 1) * sizeof(uint64_t));
    uint64_t *slots = PyMem_Malloc(((size_t)n * (size_t)depth + 1) * sizeof(uint64_t));
    size_t wanted_n = 3 * (size_t)k + 1 + 3 * (size_t)n * (size_t)depth;
    uint64_t *wanted = PyMem_Malloc(wanted_n * sizeof(uint64_t));
    PyObject *result = NULL, *replies = NULL;
    Run run;
    List list;
    memset(&run, 0, sizeof run);
    memset(&list, 0, sizeof list);
    if (h == NULL || inc == NULL || slots == NULL || wanted == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(items, i);
        h[i] = PyLong_AsUnsignedLongLong(PyList_GET_ITEM(hashes, i));
        inc[i] = PyLong_AsUnsignedLongLong(PyList_GET_ITEM(increments, i));
        if (PyErr_Occurred())
            goto done;
        if (!PyBytes_Check(item) || PyBytes_GET_SIZE(item) > (Py_ssize_t)ITEM_BYTES_MAX ||
            inc[i] > COUNT_MAX) {
            PyErr_SetString(PyExc_ValueError, "an item is not bytes, too long, or its "
                                              "increment is out of range");
            goto done;
        }
        uint64_t step = mix64(h[i], 1) | 1, start = h[i] >> 32;
        for (Py_ssize_t row = 0; row < depth; row++) {
            unsigned __int128 column = ((unsigned __int128)start +
                                        (unsigned __int128)row * step) % width;
            slots[i * depth + row] = BUCKETS + 3 * ((uint64_t)row * width + (uint64_t)column);
        }
    }
    size_t w = 0;
    for (Py_ssize_t at = 0; at < k; at++)
        for (uint64_t j = 0; j < 3; j++)
            wanted[w++] = position_slot(at) + j;
    wanted[w++] = TICKS;
    for (Py_ssize_t i = 0; i < n * depth; i++)
        for (uint64_t j = 0; j < 3; j++)
            wanted[w++] = slots[i] + j;
    int packed = PyBytes_Check(read);
    if (!run_init(&run, wanted_n, packed ? NULL : read) ||
        (packed && !packed_of(read, &run.packed)) || !read_missing(&run, wanted, wanted_n) ||
        !list_init(&list, &run, k))
        goto done;
    replies = PyList_New(n);
    if (replies == NULL)
        goto done;
    Py_ssize_t item_at = 0, calls = PyList_GET_SIZE(ends);
    for (Py_ssize_t c = 0; c < calls; c++) {
        Py_ssize_t end = PyLong_AsSsize_t(PyList_GET_ITEM(ends, c));
        if (end == -1 && PyErr_Occurred())
            goto done;
        if (end < item_at || end > n) {
            PyErr_SetString(PyExc_ValueError, "call_ends must rise to the number of items");
            goto done;
        }
        long long decays_left = DECAYS_PER_CALL_MAX;
        for (; item_at < end; item_at++) {
            PyObject *expelled;
            if (!add_one(&list, &run, PyList_GET_ITEM(items, item_at), h[item_at], inc[item_at],
                         slots + item_at * depth, depth, powers, decay, &decays_left, &expelled))
                goto done;
            if (expelled == NULL) {
                Py_INCREF(Py_None);
                expelled = Py_None;
            }
            PyList_SET_ITEM(replies, item_at, expelled);
        }
    }
    if (item_at != n) {
        PyErr_SetString(PyExc_ValueError, "call_ends must rise to the number of items");
        goto done;
    }
    PyObject *pairs = pairs_of(&run, 0);
    if (pairs != NULL)
        result = Py_BuildValue("(NO)", pairs, replies);
done:
    Py_XDECREF(replies); /* (a list torn down with items not set yet is fine) */
    list_free(&list);
    run_free(&run);
    PyMem_Free(h);
    PyMem_Free(inc);
    PyMem_Free(slots);
    PyMem_Free(wanted);
    return result;
}

PyDoc_STRVAR(rows_doc,
             "rows(cache, indices, values, slots, fp, increment, seed, decays_left, powers, "
             "decay, /)\n"
             "One item's increment through every row over a dict of the slots (each bucket "
             "slot in it): (best count, decays left); raised slots go into the dict and are "
             "appended to indices / values. The rows add() runs, alone (for the tests).");

static PyObject *rows(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 10) {
        PyErr_Format(PyExc_TypeError, "rows() takes 10 positional arguments, got %zd", nargs);
        return NULL;
    }
    PyObject *cache = args[0], *indices = args[1], *values = args[2], *slot_list = args[3];
    if (!PyDict_Check(cache) || !PyList_Check(indices) || !PyList_Check(values) ||
        !PyList_Check(slot_list)) {
        PyErr_SetString(PyExc_TypeError, "rows(dict, list, list, list, ...)");
        return NULL;
    }
    uint64_t fp = PyLong_AsUnsignedLongLong(args[4]);
    uint64_t increment = PyLong_AsUnsignedLongLong(args[5]);
    uint64_t seed = PyLong_AsUnsignedLongLong(args[6]);
    long long decays_left = PyLong_AsLongLong(args[7]);
    double decay = PyFloat_AsDouble(args[9]);
    double powers[POWERS];
    if (PyErr_Occurred() || !as_doubles(args[8], powers))
        return NULL;
    if (fp > LOW32 || increment > COUNT_MAX) {
        PyErr_SetString(PyExc_ValueError, "fingerprint or increment out of range");
        return NULL;
    }
    Py_ssize_t depth = PyList_GET_SIZE(slot_list);
    uint64_t slots[64];
    if (depth > 64) {
        PyErr_SetString(PyExc_ValueError, "at most 64 rows");
        return NULL;
    }
    for (Py_ssize_t row = 0; row < depth; row++) {
        slots[row] = PyLong_AsUnsignedLongLong(PyList_GET_ITEM(slot_list, row));
        if (PyErr_Occurred())
            return NULL;
    }
    Run run;
    if (!run_init(&run, (size_t)PyDict_GET_SIZE(cache), NULL)) {
        run_free(&run);
        return NULL;
    }
    PyObject *key, *value, *result = NULL;
    Py_ssize_t pos = 0;
    while (PyDict_Next(cache, &pos, &key, &value)) {
        uint64_t slot = PyLong_AsUnsignedLongLong(key), held = PyLong_AsUnsignedLongLong(value);
        if (PyErr_Occurred() || !hold(&run, slot, held))
            goto done;
    }
    uint64_t best;
    if (!item_rows(&run, slots, depth, fp, increment, seed, powers, decay, &decays_left, &best))
        goto done;
    for (size_t i = 0; i < run.out_count; i++) {
        PyObject *slot = PyLong_FromUnsignedLongLong(run.out_slots[i]);
        PyObject *raised = PyLong_FromUnsignedLongLong(run.out_values[i]);
        int ok = slot != NULL && raised != NULL && PyDict_SetItem(cache, slot, raised) == 0 &&
                 PyList_Append(indices, slot) == 0 && PyList_Append(values, raised) == 0;
        Py_XDECREF(slot);
        Py_XDECREF(raised);
        if (!ok)
            goto done;
    }
    result = Py_BuildValue("(KL)", (unsigned long long)best, decays_left);
done:
    run_free(&run);
    return result;
}

static PyMethodDef methods[] = {
    {"add", (PyCFunction)(void (*)(void))add, METH_FASTCALL, add_doc},
    {"rows", (PyCFunction)(void (*)(void))rows, METH_FASTCALL, rows_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "hearsay.sketch._heavykeeper",
    "A TOPK.ADD / INCRBY on the writer's own slice: HeavyKeeper's rows and the top-k list.",
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
