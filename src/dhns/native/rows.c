/* Row-wise optimizer updates of an embedding table on the rows a batch touched.
 *
 * `dhns.training.step.RowAdagrad` in PyTorch squares the (U, w) summed gradients into a new tensor, divides
 * them into another and adds that into the table: three (U, w) temporaries, each a fresh 100 MB at U = 126k
 * rows of 200 (1.5M entities). Here each row is read once, its accumulator updated and the table row moved in
 * the same pass. Rows are distinct (the gradient is coalesced), so each is one thread's: thread-count
 * independent.
 */
#include <math.h>
#include <stdint.h>

#include "parts.h"

typedef struct {
    float *table;        /* (N, w) */
    float *sums;         /* (N,) one accumulator per row */
    const int64_t *rows; /* (U,) distinct */
    const float *values; /* (U, w) summed gradients of those rows */
    int64_t count, width;
    float lr, eps;
} adagrad_job;

static void row_adagrad_part(const void *context, int64_t part, int64_t parts) {
    const adagrad_job *job = (const adagrad_job *)context;
    const int64_t width = job->width;
    for (int64_t u = split(job->count, part, parts); u < split(job->count, part + 1, parts); ++u) {
        const float *gradient = job->values + u * width;
        float squares = 0.0f;
#pragma omp simd reduction(+ : squares)
        for (int64_t i = 0; i < width; ++i) squares += gradient[i] * gradient[i];
        const int64_t row = job->rows[u];
        const float sum = job->sums[row] + squares / (float)width;
        job->sums[row] = sum;
        const float denominator = sqrtf(sum) + job->eps, step = -job->lr;
        float *weights = job->table + row * width;
#pragma omp simd
        for (int64_t i = 0; i < width; ++i) weights[i] += step * (gradient[i] / denominator);
    }
}

/* s_r += mean_j g_rj^2; table[r] += -lr * g_r / (sqrt(s_r) + eps), for each of the `count` distinct rows */
void dhns_row_adagrad(float *table, float *sums, const int64_t *rows, const float *values, int64_t count,
                      int64_t width, float lr, float eps, int64_t threads) {
    adagrad_job job = {table, sums, rows, values, count, width, lr, eps};
    run_parts(row_adagrad_part, &job, threads);
}
