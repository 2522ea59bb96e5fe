/* A float's bits and back, for the kernels that round to bf16 or take a float apart (memcpy: no aliasing). */
#ifndef DHNS_BITS_H
#define DHNS_BITS_H

#include <stdint.h>
#include <string.h>

static inline float bits_to_float(uint32_t bits) {
    float out;
    memcpy(&out, &bits, sizeof out);
    return out;
}

static inline uint32_t float_to_bits(float value) {
    uint32_t out;
    memcpy(&out, &value, sizeof out);
    return out;
}

#endif
