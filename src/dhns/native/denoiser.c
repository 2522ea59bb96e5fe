/* The denoiser's hidden layer on the CPU, after its first matmul: relu((h + c) * s + b), then LayerNorm.
 *
 * Built with the distance loops into one library by dhns/native/__init__.py (-O3, `omp simd`, threads
 * from parts.h). PyTorch runs this as four or five passes over an (L, N, hidden) tensor, each reading
 * and writing memory (and under bf16 autocast, casts between them); here each row is read once, kept
 * in a row buffer in L1 while its mean and variance are taken, and written once.
 *
 * hidden: (levels, rows, width) fp32 or bf16, overwritten with the result in the same dtype; addend: null
 * or the same shape and dtype (the matmul's constant term, added here rather than copied into the matmul's
 * output first); row_scale: (levels, rows) fp32, the first LayerNorm's 1 / sigma per row; bias: (levels,
 * width) fp32.
 * Arithmetic is fp32 whatever the storage; a bf16 result is rounded to nearest even once, at the end.
 * LayerNorm is PyTorch's: biased variance of the row, (v - mean) / sqrt(var + eps), no affine part.
 * Each row is one thread's and its sums run in a fixed order: results do not depend on the thread count.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bits.h"
#include "parts.h"

enum { STORE_FP32 = 0, STORE_BF16 = 1 };

static inline float bf16_to_float(uint16_t value) { return bits_to_float((uint32_t)value << 16); }

/* round to nearest, ties to even (what PyTorch's float -> bfloat16 conversion does); NaN stays NaN */
static inline uint16_t float_to_bf16(float value) {
    uint32_t bits = float_to_bits(value);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40u);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

typedef struct {
    int store;
    void *hidden;
    const void *addend;
    const float *row_scale, *bias;
    int64_t levels, rows, width;
    float epsilon;
} hidden_job;

/* relu(x * scale + bias) into row (fp32), returning the row's sum */
static float activate(const float *restrict x, float scale, const float *restrict bias, float *restrict row,
                      int64_t width) {
    float total = 0.0f;
#pragma omp simd reduction(+ : total)
    for (int64_t j = 0; j < width; ++j) {
        const float v = x[j] * scale + bias[j];
        row[j] = v < 0.0f ? 0.0f : v; /* a NaN stays a NaN, as in torch.relu */
        total += row[j];
    }
    return total;
}

static float inverse_deviation(const float *restrict row, float mean, int64_t width, float epsilon) {
    float squares = 0.0f;
#pragma omp simd reduction(+ : squares)
    for (int64_t j = 0; j < width; ++j) squares += (row[j] - mean) * (row[j] - mean);
    return 1.0f / sqrtf(squares / (float)width + epsilon);
}

static void hidden_part(const void *context, int64_t part, int64_t parts) {
    const hidden_job *job = (const hidden_job *)context;
    const int64_t width = job->width, total_rows = job->levels * job->rows;
    float *row = (float *)malloc((size_t)width * sizeof(float));
    float *wide = (float *)malloc((size_t)width * sizeof(float));
    if (!row || !wide) abort(); /* a few KB: cannot fail in practice, and must never fail silently */
    for (int64_t r = split(total_rows, part, parts); r < split(total_rows, part + 1, parts); ++r) {
        const float *bias = job->bias + (r / job->rows) * width;
        const float scale = job->row_scale[r];
        if (job->store == STORE_FP32) {
            float *x = (float *)job->hidden + r * width;
            const float *source = x;
            if (job->addend) {
                const float *add = (const float *)job->addend + r * width;
#pragma omp simd
                for (int64_t j = 0; j < width; ++j) wide[j] = x[j] + add[j];
                source = wide;
            }
            const float mean = activate(source, scale, bias, row, width) / (float)width;
            const float inverse = inverse_deviation(row, mean, width, job->epsilon);
#pragma omp simd
            for (int64_t j = 0; j < width; ++j) x[j] = (row[j] - mean) * inverse;
        } else {
            uint16_t *x = (uint16_t *)job->hidden + r * width;
            if (job->addend) {
                const uint16_t *add = (const uint16_t *)job->addend + r * width;
#pragma omp simd
                for (int64_t j = 0; j < width; ++j) wide[j] = bf16_to_float(x[j]) + bf16_to_float(add[j]);
            } else {
#pragma omp simd
                for (int64_t j = 0; j < width; ++j) wide[j] = bf16_to_float(x[j]);
            }
            const float mean = activate(wide, scale, bias, row, width) / (float)width;
            const float inverse = inverse_deviation(row, mean, width, job->epsilon);
            for (int64_t j = 0; j < width; ++j) x[j] = float_to_bf16((row[j] - mean) * inverse);
        }
    }
    free(row);
    free(wide);
}

void dhns_denoiser_hidden(int store, void *hidden, const void *addend, const float *row_scale, const float *bias,
                          int64_t levels, int64_t rows, int64_t width, float epsilon, int64_t threads) {
    const hidden_job job = {store, hidden, addend, row_scale, bias, levels, rows, width, epsilon};
    int64_t parts = threads;
    const int64_t total_rows = levels * rows;
    if (parts > total_rows / 64) parts = total_rows / 64; /* a thread per 64 rows at least */
    run_parts(hidden_part, &job, parts);
}

/* The first matmul's input row for each state x (the chain's step before the matmul), in one pass per row.
 *
 * With z = [x, tau, c] and part means m_x, m_tau, m_c and centred sums of squares M2_x, M2_tau, M2_c, a row's
 * LayerNorm mean is mu = (m_x + m_tau + m_c) / 3 and its variance (M2_x + M2_tau + M2_c + w sum_p (m_p - mu)^2)
 * / 3w (`PreparedDenoisers` in denoiser.py). Each row writes [x - m_x, m_x - mu, m_tau - mu, m_c - mu] into the
 * first w + 3 columns of `inputs` (fp32 or bf16; its last column, the constant one, is left as it is) and
 * 1 / sqrt(variance + epsilon) into row_scale. x: (levels, rows, w) fp32; tau_mean, tau_m2: (levels,);
 * condition_mean, condition_m2: (levels, rows); all fp32. Sums are fp32 in a fixed order per row.
 */
typedef struct {
    int store;
    void *inputs;
    float *row_scale;
    const float *x, *tau_mean, *tau_m2, *condition_mean, *condition_m2;
    int64_t levels, rows, width, stride;
    float epsilon;
} inputs_job;

static void inputs_part(const void *context, int64_t part, int64_t parts) {
    const inputs_job *job = (const inputs_job *)context;
    const int64_t width = job->width, total_rows = job->levels * job->rows;
    float *centred = (float *)malloc((size_t)width * sizeof(float));
    if (!centred) abort();
    for (int64_t r = split(total_rows, part, parts); r < split(total_rows, part + 1, parts); ++r) {
        const float *x = job->x + r * width;
        const int64_t level = r / job->rows;
        float total = 0.0f;
#pragma omp simd reduction(+ : total)
        for (int64_t j = 0; j < width; ++j) total += x[j];
        const float mean_x = total / (float)width;
        float squares = 0.0f;
#pragma omp simd reduction(+ : squares)
        for (int64_t j = 0; j < width; ++j) {
            centred[j] = x[j] - mean_x;
            squares += centred[j] * centred[j];
        }
        const float mean_tau = job->tau_mean[level], mean_c = job->condition_mean[r];
        const float mu = (mean_x + mean_tau + mean_c) / 3.0f;
        const float shifts[3] = {mean_x - mu, mean_tau - mu, mean_c - mu};
        const float spread = shifts[0] * shifts[0] + shifts[1] * shifts[1] + shifts[2] * shifts[2];
        const float variance = (squares + job->tau_m2[level] + job->condition_m2[r] + (float)width * spread)
                               / (float)(3 * width);
        job->row_scale[r] = 1.0f / sqrtf(variance + job->epsilon);
        if (job->store == STORE_FP32) {
            float *out = (float *)job->inputs + r * job->stride;
            memcpy(out, centred, (size_t)width * sizeof(float));
            memcpy(out + width, shifts, sizeof shifts);
        } else {
            uint16_t *out = (uint16_t *)job->inputs + r * job->stride;
            for (int64_t j = 0; j < width; ++j) out[j] = float_to_bf16(centred[j]);
            for (int p = 0; p < 3; ++p) out[width + p] = float_to_bf16(shifts[p]);
        }
    }
    free(centred);
}

void dhns_denoiser_inputs(int store, void *inputs, float *row_scale, const float *x, const float *tau_mean,
                          const float *tau_m2, const float *condition_mean, const float *condition_m2, int64_t levels,
                          int64_t rows, int64_t width, int64_t stride, float epsilon, int64_t threads) {
    const inputs_job job = {store, inputs, row_scale, x, tau_mean, tau_m2, condition_mean, condition_m2,
                            levels, rows, width, stride, epsilon};
    int64_t parts = threads;
    const int64_t total_rows = levels * rows;
    if (parts > total_rows / 64) parts = total_rows / 64;
    run_parts(inputs_part, &job, parts < 1 ? 1 : parts);
}
