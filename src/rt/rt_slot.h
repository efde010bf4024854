/*
 * rt_slot.h — one-shot reply slots and the deadline timer (private to src/rt).
 *
 * A slot is the single place a reply can go. Whoever wins the atomic
 * PENDING -> DONE transition delivers; every other attempt is dropped, so a
 * caller gets exactly one reply even when the actor, a commit and the timer
 * race for it. A slot is shared by at most two owners: the request path
 * (mailbox, handler, parked list, commit hold) and the timer wheel; its
 * block is recycled or freed when both let go.
 */
#ifndef RT_SLOT_H
#define RT_SLOT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "rt.h"

typedef struct rt_slot rt_slot;
typedef struct rt_blkpool rt_blkpool;
struct rt_slot {
    _Atomic int state; /* 0 pending, 1 done */
    _Atomic int refs;
    /* timer wheel links: guarded by the shard lock */
    rt_slot *tnext, **tpprev;
    uint64_t deadline; /* 0 = none */
    uint8_t shard;
    uint8_t linked;
    /* owner-side links and the reply held back until a commit is durable */
    rt_slot *hnext;
    rt_reply held;
    rt_reply_cb cb;
    void *arg;
    rt_blkpool *pool; /* where the block goes back at the last release; NULL = free() */
};

/*
 * Recycles the fixed-size blocks of small requests (slot, queue node and a
 * payload of up to ~100 bytes in one block). A request is allocated by the
 * sending thread and released by a worker, which with malloc means every
 * free goes back to the sender's arena and contends on its lock. Here a
 * releaser pushes the block onto a lock-free stack (one CAS) and senders pop
 * from their own list under a short lock, refilling it by taking the whole
 * stack at once (an exchange: nothing is ever popped singly from the shared
 * stack, so there is no ABA). At most RT_BLK_CAP blocks (2 MiB) are ever
 * pooled, kept until rt_stop(); past that, requests get plain malloc'd
 * blocks. rt_blkpool_destroy() frees them once every slot is released.
 */
#define RT_BLK_SIZE 256
#define RT_BLK_CAP 8192

typedef struct rt_blklink {
    struct rt_blklink *next;
} rt_blklink;

/* The releasers' word and the senders' lock sit on separate cache lines
 * (padding, not _Alignas: the runtime is calloc'd, 16-byte aligned). */
struct rt_blkpool {
    char pad0[64];
    _Atomic(rt_blklink *) ret; /* pushed by releasers */
    char pad1[64 - sizeof(rt_blklink *)];
    pthread_mutex_t mu; /* guards take and nblocks (senders) */
    rt_blklink *take;
    unsigned nblocks; /* blocks owned by the pool: in flight, in take or in ret */
    char pad2[64];
};

void rt_blkpool_init(rt_blkpool *p);
/* Frees the pooled blocks. Every slot of the pool must have been released. */
void rt_blkpool_destroy(rt_blkpool *p);
/* A block of at least size bytes headed by a slot whose pool field is set:
 * from p when size fits a pooled block (p may be NULL), else malloc'd.
 * NULL when out of memory. */
rt_slot *rt_slot_alloc(rt_blkpool *p, size_t size);

#define RT_TIMER_SHARDS 16
#define RT_WHEEL 1024

typedef struct rt_tshard {
    pthread_mutex_t mu;
    uint64_t scanned; /* last ms whose bucket was scanned */
    size_t count;
    rt_slot *wheel[RT_WHEEL];
} rt_tshard;

typedef struct rt_timer {
    rt_tshard shard[RT_TIMER_SHARDS];
    pthread_t thr;
    pthread_mutex_t mu; /* guards sleeping/quit with cv */
    pthread_cond_t cv;
    _Atomic int sleeping;
    int quit;
    uint64_t fired;
} rt_timer;

/* Hot, tiny critical sections contended across cores: spin a little before
 * sleeping in the kernel (glibc's adaptive mutex). */
void rt_mutex_init_hot(pthread_mutex_t *mu);
/* Timed waits on the monotonic clock: a wall-clock step must not stall the
 * timer or the sweeper. */
void rt_cond_init_mono(pthread_cond_t *cv);

int rt_timer_start(rt_timer *t);
/* Fires whatever is still linked with CANCELLED and joins the thread. */
void rt_timer_stop(rt_timer *t);

/* Initializes a slot owned by the caller (one reference); leaves pool as
 * rt_slot_alloc() set it. */
void rt_slot_init(rt_slot *s, uint64_t deadline, rt_reply_cb cb, void *arg);
/* Links s into the wheel (takes a second reference) when it has a deadline. */
void rt_slot_arm(rt_timer *t, rt_slot *s);
/* Moves an armed, pending slot to a new deadline. */
void rt_slot_rearm(rt_timer *t, rt_slot *s, uint64_t deadline);
/* Delivers a reply unless one was delivered already. Ownership: data (malloc'd
 * or NULL) is consumed either way. Returns true when this call delivered. */
bool rt_slot_finish(rt_timer *t, rt_slot *s, rt_status st, uint8_t *data, size_t len,
                    uint64_t blame, uint32_t retry_after_ms);
/* Same, with a constant error message. */
bool rt_slot_fail(rt_timer *t, rt_slot *s, rt_status st, const char *msg, uint32_t retry_after_ms);
static inline bool rt_slot_done(rt_slot *s)
{
    return atomic_load_explicit(&s->state, memory_order_acquire) != 0;
}
/* Drops the caller's reference; at zero the slot's memory block goes back to
 * its pool, or is freed. */
void rt_slot_release(rt_slot *s);

/* Builds a reply carrying a copy of a message (for errors). */
void rt_reply_error(rt_reply *r, rt_status st, const char *msg, uint32_t retry_after_ms);

#endif
