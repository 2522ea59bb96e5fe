/* Work split across plain pthreads, shared by the kernels (no OpenMP runtime: nothing spins beside
 * PyTorch's own pool). A kernel cuts its rows into `parts` contiguous ranges with `split`; `run_parts`
 * runs part 0 on the calling thread and the others on threads started for the call.
 */
#ifndef DHNS_PARTS_H
#define DHNS_PARTS_H

#include <pthread.h>
#include <stdint.h>

#define MAX_PARTS 256

typedef void (*part_fn)(const void *context, int64_t part, int64_t parts);

typedef struct {
    part_fn fn;
    const void *context;
    int64_t part, parts;
} part_call;

static inline void *run_part(void *argument) {
    const part_call *call = (const part_call *)argument;
    call->fn(call->context, call->part, call->parts);
    return 0;
}

/* fn(context, p, parts) for p = 0 .. parts-1, part 0 on the calling thread; a thread that cannot be
 * started runs its part here instead. */
static inline void run_parts(part_fn fn, const void *context, int64_t parts) {
    pthread_t threads[MAX_PARTS];
    part_call calls[MAX_PARTS];
    int started[MAX_PARTS];
    if (parts > MAX_PARTS) parts = MAX_PARTS;
    if (parts < 1) parts = 1;
    for (int64_t p = 1; p < parts; ++p) {
        calls[p] = (part_call){fn, context, p, parts};
        started[p] = pthread_create(&threads[p], 0, run_part, &calls[p]) == 0;
    }
    fn(context, 0, parts);
    for (int64_t p = 1; p < parts; ++p) {
        if (started[p]) pthread_join(threads[p], 0);
        else fn(context, p, parts);
    }
}

static inline int64_t split(int64_t count, int64_t part, int64_t parts) { return count * part / parts; }

#endif
