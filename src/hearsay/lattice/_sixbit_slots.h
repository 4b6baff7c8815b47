/* Six-bit slot reads and writes, shared by _sixbit.c (the packed HLL registers) and _sparse.c
 * (a few pairs merged into any dense form).
 *
 * Layout (Redis's, LSB first): slot i lies at bits 6*i .. 6*i+5 of the buffer read as one
 * little-endian bit string, so four slots fill three bytes: slot 4*g+j is bits 6*j .. 6*j+5 of
 * the 24-bit little-endian word at bytes 3*g .. 3*g+2.
 */
#ifndef HEARSAY_SIXBIT_SLOTS_H
#define HEARSAY_SIXBIT_SLOTS_H

#include <stdint.h>

#define SIX_MAX 63

static inline unsigned get_slot(const uint8_t *p, Py_ssize_t i)
{
    const uint8_t *g = p + 3 * (i >> 2);
    uint32_t word = (uint32_t)g[0] | (uint32_t)g[1] << 8 | (uint32_t)g[2] << 16;
    return (word >> (6 * (i & 3))) & SIX_MAX;
}

static inline void set_slot(uint8_t *p, Py_ssize_t i, unsigned value)
{
    uint8_t *g = p + 3 * (i >> 2);
    unsigned shift = 6 * (unsigned)(i & 3);
    uint32_t word = (uint32_t)g[0] | (uint32_t)g[1] << 8 | (uint32_t)g[2] << 16;
    word = (word & ~((uint32_t)SIX_MAX << shift)) | (uint32_t)value << shift;
    g[0] = (uint8_t)word;
    g[1] = (uint8_t)(word >> 8);
    g[2] = (uint8_t)(word >> 16);
}

#endif
