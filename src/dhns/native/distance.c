/* Distance scorers' hot loops on the CPU: TransE's L1 distance and RotatE's sum of complex moduli.
 *
 * Built and loaded by dhns/native/__init__.py (gcc or clang, -O3, vectorised through `omp simd` and
 * -fno-math-errno, which lets sqrtf vectorise: nothing here reads errno; no OpenMP
 * runtime: threads are plain pthreads, so nothing spins beside PyTorch's own pool). All tensors are
 * contiguous fp32 and ids int64. A "difference" is candidate - query, as in dhns.models.interactions.
 *
 * Every result is independent of the thread count: each output element is written by one thread, and
 * each sum runs in a fixed order (the table gradient of an entity adds its (b, j) terms in ascending
 * order whichever thread owns that entity).
 *
 * Training's backward is a scatter: 2000 x 64 candidate gradients land on ~15k table rows. Grouping the pairs by
 * id first (a counting sort) turns it into one read and one write per touched row, and one read of the row's
 * entity, the queries staying in cache. (Keeping TransE's signs from forward, a byte an element, to spare
 * backward's reads was tried: forward's extra writes cost what backward saved.)
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parts.h"

enum { KIND_L1 = 0, KIND_MODULUS = 1 };
#define ENTITY_BLOCK 64 /* entity rows per block of the all-entities comparison: they stay in L1/L2 */
#define SUM_STRIDE(width) (((width) + 15) / 16 * 16) /* whole 64-byte lines: parts' row buffers share none */

/* distance(query, candidate): L1 over w reals, or the sum of d = w / 2 moduli of [real | imaginary] */
static float distance(int kind, const float *query, const float *candidate, int64_t width, float epsilon) {
    float total = 0.0f;
    if (kind == KIND_L1) {
#pragma omp simd reduction(+ : total)
        for (int64_t i = 0; i < width; ++i) total += fabsf(candidate[i] - query[i]);
    } else {
        const int64_t half = width / 2;
#pragma omp simd reduction(+ : total)
        for (int64_t i = 0; i < half; ++i) {
            const float real = candidate[i] - query[i], imag = candidate[half + i] - query[half + i];
            total += sqrtf(real * real + imag * imag + epsilon);
        }
    }
    return total;
}

/* out += scale * d distance / d difference, for one (query, candidate) pair */
static void add_difference_gradient(int kind, const float *query, const float *candidate, int64_t width,
                                    float epsilon, float scale, float *out) {
    if (kind == KIND_L1) {
#pragma omp simd
        for (int64_t i = 0; i < width; ++i) {
            const float difference = candidate[i] - query[i];
            const float sign = (float)(difference > 0.0f) - (float)(difference < 0.0f);
            out[i] += sign * scale;
        }
    } else {
        const int64_t half = width / 2;
#pragma omp simd
        for (int64_t i = 0; i < half; ++i) {
            const float real = candidate[i] - query[i], imag = candidate[half + i] - query[half + i];
            const float factor = (1.0f / sqrtf(real * real + imag * imag + epsilon)) * scale;
            out[i] += real * factor;
            out[half + i] += imag * factor;
        }
    }
}

typedef struct {
    int kind;
    const float *queries;    /* (B, w) */
    const float *table;      /* (U, w) */
    const int64_t *index;    /* (B, k) */
    const float *grad;       /* (B, k) upstream gradient (backward only) */
    float *out;              /* forward: (B, k) distances; backward: (B, w) or (U, w) gradient */
    const int64_t *starts;   /* table gradient: (U + 1,) where each id's pairs begin in `order` */
    const int64_t *order;    /* (B k,) pair positions grouped by id, ascending within an id */
    const int64_t *query_of; /* (B k,) the query row of each pair in `order` */
    float *sums;             /* one row buffer per part, SUM_STRIDE(w) floats apart */
    int64_t batch, negatives, width, rows;
    float epsilon;
} gathered_job;

static void gathered_forward_part(const void *context, int64_t part, int64_t parts) {
    const gathered_job *job = (const gathered_job *)context;
    for (int64_t b = split(job->batch, part, parts); b < split(job->batch, part + 1, parts); ++b) {
        const float *query = job->queries + b * job->width;
        for (int64_t j = 0; j < job->negatives; ++j) {
            const int64_t id = job->index[b * job->negatives + j];
            job->out[b * job->negatives + j] =
                distance(job->kind, query, job->table + id * job->width, job->width, job->epsilon);
        }
    }
}

/* grad_queries[b] = -sum_j grad[b, j] d distance / d difference (the difference is candidate - query) */
static void gathered_query_gradient_part(const void *context, int64_t part, int64_t parts) {
    const gathered_job *job = (const gathered_job *)context;
    for (int64_t b = split(job->batch, part, parts); b < split(job->batch, part + 1, parts); ++b) {
        const float *query = job->queries + b * job->width;
        float *out = job->out + b * job->width;
        for (int64_t i = 0; i < job->width; ++i) out[i] = 0.0f;
        for (int64_t j = 0; j < job->negatives; ++j) {
            const int64_t at = b * job->negatives + j;
            add_difference_gradient(job->kind, query, job->table + job->index[at] * job->width, job->width,
                                    job->epsilon, -job->grad[at], out);
        }
    }
}

/* grad_table[id] = 0 + grad[b, j] d distance / d difference for every (b, j) with index[b, j] = id, in ascending
 * (b, j) order; rows no pair picked are written as zeros (no separate zeroing pass over the table). This part owns
 * the ids in its range; each id's row is added up in a buffer that stays in L1 and written once, and the entity
 * row is read once, however many pairs picked it. */
static void gathered_table_gradient_part(const void *context, int64_t part, int64_t parts) {
    const gathered_job *job = (const gathered_job *)context;
    const int64_t width = job->width;
    float *sum = job->sums + part * SUM_STRIDE(width);
    for (int64_t id = split(job->rows, part, parts); id < split(job->rows, part + 1, parts); ++id) {
        float *row = job->out + id * width;
        if (job->starts[id] == job->starts[id + 1]) {
            memset(row, 0, (size_t)width * sizeof(float));
            continue;
        }
        for (int64_t i = 0; i < width; ++i) sum[i] = 0.0f;
        for (int64_t p = job->starts[id]; p < job->starts[id + 1]; ++p) {
            add_difference_gradient(job->kind, job->queries + job->query_of[p] * width, job->table + id * width,
                                    width, job->epsilon, job->grad[job->order[p]], sum);
        }
        memcpy(row, sum, (size_t)width * sizeof(float));
    }
}

/* a stable counting sort of the pairs by id: starts (rows + 1), order and query_of (pairs each); 0 when out of
 * memory, -1 when an id is outside [0, rows) (nothing allocated is kept either way) */
static int group_pairs_by_id(const int64_t *index, int64_t batch, int64_t negatives, int64_t rows, int64_t **starts,
                             int64_t **order, int64_t **query_of) {
    const size_t pairs = (size_t)(batch * negatives > 0 ? batch * negatives : 1);
    *starts = (int64_t *)calloc((size_t)rows + 1, sizeof(int64_t));
    int64_t *next = (int64_t *)malloc(((size_t)rows + 1) * sizeof(int64_t));
    *order = (int64_t *)malloc(pairs * sizeof(int64_t));
    *query_of = (int64_t *)malloc(pairs * sizeof(int64_t));
    int ok = *starts && next && *order && *query_of;
    for (int64_t at = 0; ok == 1 && at < batch * negatives; ++at) {
        if (index[at] < 0 || index[at] >= rows) ok = -1;
        else ++(*starts)[index[at] + 1];
    }
    if (ok == 1) {
        for (int64_t id = 0; id < rows; ++id) (*starts)[id + 1] += (*starts)[id];
        memcpy(next, *starts, ((size_t)rows + 1) * sizeof(int64_t));
        for (int64_t b = 0, at = 0; b < batch; ++b) {
            for (int64_t j = 0; j < negatives; ++j, ++at) {
                const int64_t slot = next[index[at]]++;
                (*order)[slot] = at;
                (*query_of)[slot] = b;
            }
        }
    } else {
        free(*starts);
        free(*order);
        free(*query_of);
    }
    free(next);
    return ok;
}

/* distances (B, k); returns 1, or -1 (nothing computed) when an id is outside [0, rows) */
int dhns_gathered_distance(int kind, const float *queries, const float *table, const int64_t *index,
                           float *distances, int64_t batch, int64_t negatives, int64_t width, int64_t rows,
                           float epsilon, int64_t threads) {
    for (int64_t at = 0; at < batch * negatives; ++at)
        if (index[at] < 0 || index[at] >= rows) return -1;
    gathered_job job = {kind, queries, table, index, 0, distances, 0, 0, 0, 0, batch, negatives, width, rows, epsilon};
    run_parts(gathered_forward_part, &job, threads);
    return 1;
}

/* grad_queries (B, w) and grad_table (U, w), each written whole; either may be null. Returns 1, or for the table
 * gradient (nothing of it written) 0 when its grouping could not be allocated, -1 when an id is out of range. */
int dhns_gathered_distance_backward(int kind, const float *queries, const float *table, const int64_t *index,
                                    const float *grad, float *grad_queries, float *grad_table, int64_t batch,
                                    int64_t negatives, int64_t width, int64_t rows, float epsilon, int64_t threads) {
    if (grad_queries) {
        gathered_job job = {kind, queries, table, index, grad, grad_queries, 0, 0, 0, 0, batch, negatives, width,
                            rows, epsilon};
        run_parts(gathered_query_gradient_part, &job, threads);
    }
    if (grad_table) {
        const int64_t parts = threads < 1 ? 1 : threads > MAX_PARTS ? MAX_PARTS : threads;
        float *sums = (float *)aligned_alloc(64, (size_t)(parts * SUM_STRIDE(width) + 16) * sizeof(float));
        int64_t *starts, *order, *query_of;
        const int grouped = sums ? group_pairs_by_id(index, batch, negatives, rows, &starts, &order, &query_of) : 0;
        if (grouped != 1) {
            free(sums);
            return grouped;
        }
        gathered_job job = {kind, queries, table, index, grad, grad_table, starts, order, query_of, sums, batch,
                            negatives, width, rows, epsilon};
        run_parts(gathered_table_gradient_part, &job, parts);
        free(starts);
        free(order);
        free(query_of);
        free(sums);
    }
    return 1;
}

typedef struct {
    int kind;
    const float *queries;   /* (B, w) */
    const float *entities;  /* (N, w) */
    float *out;             /* (B, N) */
    int64_t batch, count, width;
    float epsilon;
} all_job;

/* this part's entities, a block at a time, against every query: the block is read from cache B times */
static void all_distance_part(const void *context, int64_t part, int64_t parts) {
    const all_job *job = (const all_job *)context;
    const int64_t last = split(job->count, part + 1, parts);
    for (int64_t start = split(job->count, part, parts); start < last; start += ENTITY_BLOCK) {
        const int64_t stop = start + ENTITY_BLOCK < last ? start + ENTITY_BLOCK : last;
        for (int64_t b = 0; b < job->batch; ++b) {
            const float *query = job->queries + b * job->width;
            float *row = job->out + b * job->count;
            for (int64_t e = start; e < stop; ++e)
                row[e] = distance(job->kind, query, job->entities + e * job->width, job->width, job->epsilon);
        }
    }
}

void dhns_all_distance(int kind, const float *queries, const float *entities, float *out, int64_t batch,
                       int64_t count, int64_t width, float epsilon, int64_t threads) {
    all_job job = {kind, queries, entities, out, batch, count, width, epsilon};
    run_parts(all_distance_part, &job, threads);
}
