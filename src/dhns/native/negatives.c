/* Drawn negatives filtered against the known training triples, one pass per (positive, draw).
 *
 * `dhns.sampling.negatives.NegativeSampler.sample` draws `rounds` replacement entities per slot up front
 * (the same calls, in the same order, as its PyTorch form) and keeps, per slot, the first draw whose triple
 * is not a known one, else the last draw, marked invalid. In PyTorch that is a dozen passes over (B, k) int64
 * tensors per round (keys, bitmap lookup, nonzero, sorted search, where); here each slot is decided in
 * registers. Membership is `KeySet`'s: a byte map over key mod p rules out almost every key, the rest are
 * found by binary search in the sorted keys. Each slot is written by one thread: thread-count independent.
 */
#include <stdint.h>

#include "parts.h"

typedef struct {
    const int64_t *positives;    /* (B, 3): head, relation, tail */
    const uint8_t *corrupt_tail; /* (B,) bool */
    const int64_t *draws;        /* (rounds, B, k) */
    const uint8_t *bitmap;       /* (modulus,) bool: some key has this residue */
    const int64_t *keys;         /* (count,) sorted, distinct */
    int64_t *entities;           /* (B, k) out */
    uint8_t *valid;              /* (B, k) out, bool */
    int64_t modulus, count, batch, negatives, rounds, num_entities, num_relations;
} filter_job;

static int is_known(const filter_job *job, int64_t key) {
    if (!job->bitmap[key % job->modulus]) return 0;
    int64_t low = 0, high = job->count; /* the first position whose key is >= key */
    while (low < high) {
        const int64_t middle = low + (high - low) / 2;
        if (job->keys[middle] < key) low = middle + 1;
        else high = middle;
    }
    return low < job->count && job->keys[low] == key;
}

static void filter_part(const void *context, int64_t part, int64_t parts) {
    const filter_job *job = (const filter_job *)context;
    const int64_t slots = job->batch * job->negatives;
    for (int64_t b = split(job->batch, part, parts); b < split(job->batch, part + 1, parts); ++b) {
        const int64_t head = job->positives[3 * b], relation = job->positives[3 * b + 1];
        const int64_t tail = job->positives[3 * b + 2];
        /* key = (h * R + r) * N + t with the corrupted side left out: add the drawn entity's share */
        const int64_t fixed = job->corrupt_tail[b] ? (head * job->num_relations + relation) * job->num_entities
                                                   : relation * job->num_entities + tail;
        const int64_t stride = job->corrupt_tail[b] ? 1 : job->num_relations * job->num_entities;
        for (int64_t at = b * job->negatives; at < (b + 1) * job->negatives; ++at) {
            int64_t entity = job->draws[at];
            int known = is_known(job, fixed + entity * stride);
            for (int64_t round = 1; round < job->rounds && known; ++round) {
                entity = job->draws[round * slots + at];
                known = is_known(job, fixed + entity * stride);
            }
            job->entities[at] = entity;
            job->valid[at] = (uint8_t)!known;
        }
    }
}

void dhns_filter_negatives(const int64_t *positives, const uint8_t *corrupt_tail, const int64_t *draws,
                           const uint8_t *bitmap, const int64_t *keys, int64_t *entities, uint8_t *valid,
                           int64_t modulus, int64_t count, int64_t batch, int64_t negatives, int64_t rounds,
                           int64_t num_entities, int64_t num_relations, int64_t threads) {
    filter_job job = {positives, corrupt_tail, draws, bitmap, keys, entities, valid, modulus, count,
                      batch, negatives, rounds, num_entities, num_relations};
    run_parts(filter_part, &job, threads);
}
