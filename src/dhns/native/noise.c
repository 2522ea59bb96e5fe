/* Standard normal noise for the reverse chain: Philox4x32-10 counters, turned into normals by Box-Muller.
 *
 * Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC 2011) maps a
 * 128-bit counter and a 64-bit key to 128 random bits. Element i of a draw reads counter (i / 4 as two
 * words, draw, 0) and takes lane i % 4 of the result, so every value is a function of (key, draw, i) alone:
 * any thread may compute any element, and the result does not depend on the thread count.
 *
 * Lanes (0, 1) and (2, 3) are each one Box-Muller pair: u in (0, 1] from the first word, the angle 2 pi k / 2^32
 * from the second, z0 = r cos, z1 = r sin with r = sqrt(-2 log u). The angle is reduced to [-pi/4, pi/4) exactly
 * in integers, and log, sin and cos are short polynomials (atanh and Taylor series whose truncation error is
 * below 2e-9), so the loop vectorises; the largest |z| is sqrt(2 * 33 ln 2) = 6.8. Compiled with
 * -ffp-contract=off like the other kernels: each value is a fixed sequence of IEEE float operations.
 *
 * `dhns_normal_jump` writes out = sigma z + a x + b e (x, e: null for terms that are absent), the strided
 * reverse chain's update, in one pass.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "bits.h"
#include "parts.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u
#define BLOCK 64 /* counters per inner loop: their normals are computed side by side, then stored in order */

/* log(u) for u in (0, 1], normal: u = m 2^e with m in [sqrt(1/2), sqrt(2)), log m = 2 atanh((m - 1) / (m + 1)) */
static inline float log_unit(float u) {
    const uint32_t bits = float_to_bits(u);
    int32_t exponent = (int32_t)(bits >> 23) - 127;
    float m = bits_to_float((bits & 0x007fffffu) | 0x3f800000u); /* [1, 2) */
    const int high = m > 1.4142135f;
    m = high ? m * 0.5f : m;
    exponent += high;
    const float s = (m - 1.0f) / (m + 1.0f); /* |s| <= 0.172 */
    const float s2 = s * s;
    const float series = s * (2.0f + s2 * (0.6666667f + s2 * (0.4f + s2 * (0.2857143f + s2 * 0.22222222f))));
    return (float)exponent * 0.6931472f + series;
}

/* one Box-Muller pair from two 32-bit words */
static inline void box_muller(uint32_t radius_bits, uint32_t angle_bits, float *restrict first, float *restrict second) {
    const float u = (float)radius_bits * 0x1p-32f + 0x1p-33f; /* (0, 1] */
    const float r = sqrtf(-2.0f * log_unit(u));
    /* angle 2 pi k / 2^32 = q pi / 2 + phi: q the nearest quarter turn, phi in [-pi/4, pi/4) */
    const uint32_t quarter = (angle_bits + 0x20000000u) >> 30;
    const int32_t rest = (int32_t)(angle_bits - (quarter << 30));
    const float phi = (float)rest * 1.4629181e-09f; /* 2 pi / 2^32 */
    const float p2 = phi * phi;
    const float sine = phi + phi * p2 * (-0.16666667f + p2 * (0.008333334f + p2 * (-0.0001984127f + p2 * 2.7557319e-06f)));
    const float cosine = 1.0f + p2 * (-0.5f + p2 * (0.041666668f + p2 * (-0.0013888889f + p2 * (2.4801588e-05f + p2 * -2.755732e-07f))));
    /* rotate (cos phi, sin phi) by q quarter turns */
    const int swap = quarter & 1u;
    const float c = swap ? sine : cosine, s = swap ? cosine : sine;
    const float cos_sign = (quarter == 1u || quarter == 2u) ? -1.0f : 1.0f;
    const float sin_sign = (quarter >= 2u) ? -1.0f : 1.0f;
    *first = r * (cos_sign * c);
    *second = r * (sin_sign * s);
}

static inline void philox(uint32_t counter[4], uint32_t key0, uint32_t key1) {
    for (int round = 0; round < 10; ++round) {
        const uint64_t product0 = (uint64_t)PHILOX_M0 * counter[0];
        const uint64_t product1 = (uint64_t)PHILOX_M1 * counter[2];
        const uint32_t next0 = (uint32_t)(product1 >> 32) ^ counter[1] ^ key0;
        const uint32_t next2 = (uint32_t)(product0 >> 32) ^ counter[3] ^ key1;
        counter[1] = (uint32_t)product1;
        counter[3] = (uint32_t)product0;
        counter[0] = next0;
        counter[2] = next2;
        key0 += PHILOX_W0;
        key1 += PHILOX_W1;
    }
}

/* the normals of counters (index, draw, 0) for index in [begin, begin + count), count <= BLOCK, into z in order:
 * the rounds run over all counters side by side (structure of arrays), so the compiler vectorises them */
static void block_normals(uint64_t begin, int64_t count, uint32_t draw, uint32_t key0, uint32_t key1, float *restrict z) {
    uint32_t c0[BLOCK], c1[BLOCK], c2[BLOCK], c3[BLOCK];
#pragma omp simd
    for (int64_t i = 0; i < count; ++i) {
        const uint64_t index = begin + (uint64_t)i;
        c0[i] = (uint32_t)index;
        c1[i] = (uint32_t)(index >> 32);
        c2[i] = draw;
        c3[i] = 0u;
    }
    for (int round = 0; round < 10; ++round) {
        const uint32_t k0 = key0 + (uint32_t)round * PHILOX_W0, k1 = key1 + (uint32_t)round * PHILOX_W1;
#pragma omp simd
        for (int64_t i = 0; i < count; ++i) {
            const uint64_t product0 = (uint64_t)PHILOX_M0 * c0[i];
            const uint64_t product1 = (uint64_t)PHILOX_M1 * c2[i];
            const uint32_t next0 = (uint32_t)(product1 >> 32) ^ c1[i] ^ k0;
            const uint32_t next2 = (uint32_t)(product0 >> 32) ^ c3[i] ^ k1;
            c1[i] = (uint32_t)product1;
            c3[i] = (uint32_t)product0;
            c0[i] = next0;
            c2[i] = next2;
        }
    }
#pragma omp simd
    for (int64_t i = 0; i < count; ++i) {
        float z0, z1, z2, z3;
        box_muller(c0[i], c1[i], &z0, &z1);
        box_muller(c2[i], c3[i], &z2, &z3);
        z[4 * i] = z0;
        z[4 * i + 1] = z1;
        z[4 * i + 2] = z2;
        z[4 * i + 3] = z3;
    }
}

typedef struct {
    float *out;
    const float *x, *e;
    float a, b, sigma;
    int64_t count;
    uint32_t key0, key1, draw;
} noise_job;

static void noise_part(const void *context, int64_t part, int64_t parts) {
    const noise_job *job = (const noise_job *)context;
    const int64_t counters = (job->count + 3) / 4;
    float z[4 * BLOCK];
    for (int64_t begin = split(counters, part, parts); begin < split(counters, part + 1, parts); begin += BLOCK) {
        int64_t end = begin + BLOCK;
        if (end > split(counters, part + 1, parts)) end = split(counters, part + 1, parts);
        block_normals((uint64_t)begin, end - begin, job->draw, job->key0, job->key1, z);
        const int64_t first = 4 * begin;
        int64_t last = 4 * end;
        if (last > job->count) last = job->count;
        float *restrict out = job->out;
        const float sigma = job->sigma, a = job->a, b = job->b;
        if (job->x && job->e) {
#pragma omp simd
            for (int64_t i = first; i < last; ++i) out[i] = sigma * z[i - first] + a * job->x[i] + b * job->e[i];
        } else if (job->x) {
#pragma omp simd
            for (int64_t i = first; i < last; ++i) out[i] = sigma * z[i - first] + a * job->x[i];
        } else {
#pragma omp simd
            for (int64_t i = first; i < last; ++i) out[i] = sigma * z[i - first];
        }
    }
}

/* out[i] = sigma z_i + a x[i] + b e[i] for i < count, z_i the normal of (key, draw, i); x, e may be null */
void dhns_normal_jump(float *out, const float *x, const float *e, float a, float b, float sigma, int64_t count,
                      uint64_t key, uint32_t draw, int64_t threads) {
    const noise_job job = {out, x, e, a, b, sigma, count, (uint32_t)key, (uint32_t)(key >> 32), draw};
    int64_t parts = threads;
    const int64_t counters = (count + 3) / 4;
    if (parts > counters / 4096) parts = counters / 4096; /* below ~16k values a thread costs more than it saves */
    run_parts(noise_part, &job, parts < 1 ? 1 : parts);
}

/* the raw 128 bits of Philox4x32-10 for each of `count` (4-word counter, 2-word key) rows: for known-answer tests */
void dhns_philox(const uint32_t *counters, const uint32_t *keys, uint32_t *out, int64_t count) {
    for (int64_t row = 0; row < count; ++row) {
        uint32_t counter[4] = {counters[4 * row], counters[4 * row + 1], counters[4 * row + 2], counters[4 * row + 3]};
        philox(counter, keys[2 * row], keys[2 * row + 1]);
        memcpy(&out[4 * row], counter, sizeof counter);
    }
}
