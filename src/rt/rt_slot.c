/*
 * rt_slot.c — one-shot reply slots and the deadline timer.
 *
 * The timer is a hashed wheel of 1 ms buckets, sharded by the arming thread
 * so that senders on different threads never contend on one lock; a slot is
 * unlinked in O(1) when its reply arrives first, so memory is returned at
 * reply time, not at deadline time (a pipelined client would otherwise keep
 * every completed request alive until its deadline).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cg_config.h"
#include "rt_slot.h"

#if CG_SANITIZE_ADDRESS
#include <sanitizer/asan_interface.h>
/* A pooled block is poisoned but for its link, so a use after release is
 * still reported as one. */
#define BLK_POISON(b) ASAN_POISON_MEMORY_REGION((b), RT_BLK_SIZE - sizeof(rt_blklink))
#define BLK_UNPOISON(b) ASAN_UNPOISON_MEMORY_REGION((b), RT_BLK_SIZE - sizeof(rt_blklink))
#else
#define BLK_POISON(b) ((void)(b))
#define BLK_UNPOISON(b) ((void)(b))
#endif

uint64_t rt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void rt_reply_free(rt_reply *r)
{
    if (!r) return;
    free(r->data);
    r->data = NULL;
    r->len = 0;
}

void rt_reply_error(rt_reply *r, rt_status st, const char *msg, uint32_t retry_after_ms)
{
    size_t n = msg ? strlen(msg) : 0;
    r->status = st;
    r->data = NULL;
    r->len = 0;
    r->blame = 0;
    r->retry_after_ms = retry_after_ms;
    if (n) {
        r->data = malloc(n);
        if (r->data) {
            memcpy(r->data, msg, n);
            r->len = n;
        }
    }
}

void rt_slot_init(rt_slot *s, uint64_t deadline, rt_reply_cb cb, void *arg)
{
    atomic_init(&s->state, 0);
    atomic_init(&s->refs, 1);
    s->tnext = NULL;
    s->tpprev = NULL;
    s->deadline = deadline;
    s->shard = 0;
    s->linked = 0;
    s->hnext = NULL;
    memset(&s->held, 0, sizeof s->held);
    s->cb = cb;
    s->arg = arg;
}

/* The link lives in the block's last bytes, dead payload once released. */
static rt_blklink *blk_link(void *b)
{
    return (rt_blklink *)((char *)b + RT_BLK_SIZE - sizeof(rt_blklink));
}

static void *blk_of(rt_blklink *l)
{
    return (char *)l - (RT_BLK_SIZE - sizeof(rt_blklink));
}

void rt_blkpool_init(rt_blkpool *p)
{
    memset(p, 0, sizeof *p);
    atomic_init(&p->ret, NULL);
    rt_mutex_init_hot(&p->mu);
}

void rt_blkpool_destroy(rt_blkpool *p)
{
    rt_blklink *l = atomic_exchange_explicit(&p->ret, NULL, memory_order_acquire);
    for (int pass = 0; pass < 2; pass++) {
        while (l) {
            rt_blklink *next = l->next;
            void *b = blk_of(l);
            BLK_UNPOISON(b);
            free(b);
            l = next;
        }
        l = p->take;
        p->take = NULL;
    }
    pthread_mutex_destroy(&p->mu);
}

rt_slot *rt_slot_alloc(rt_blkpool *p, size_t size)
{
    rt_slot *s;
    if (!p || size > RT_BLK_SIZE - sizeof(rt_blklink)) {
        s = malloc(size);
        if (s) s->pool = NULL;
        return s;
    }
    pthread_mutex_lock(&p->mu);
    rt_blklink *l = p->take;
    if (!l && atomic_load_explicit(&p->ret, memory_order_relaxed))
        l = atomic_exchange_explicit(&p->ret, NULL, memory_order_acquire);
    if (l) {
        p->take = l->next;
        pthread_mutex_unlock(&p->mu);
        s = blk_of(l);
        BLK_UNPOISON(s);
        s->pool = p;
        return s;
    }
    int pooled = p->nblocks < RT_BLK_CAP;
    if (pooled) p->nblocks++;
    pthread_mutex_unlock(&p->mu);
    s = malloc(pooled ? RT_BLK_SIZE : size);
    if (!s) {
        if (pooled) {
            pthread_mutex_lock(&p->mu);
            p->nblocks--;
            pthread_mutex_unlock(&p->mu);
        }
        return NULL;
    }
    s->pool = pooled ? p : NULL;
    return s;
}

static void blk_put(rt_blkpool *p, rt_slot *s)
{
    rt_blklink *l = blk_link(s);
    BLK_POISON(s);
    rt_blklink *head = atomic_load_explicit(&p->ret, memory_order_relaxed);
    do {
        l->next = head;
    } while (!atomic_compare_exchange_weak_explicit(&p->ret, &head, l, memory_order_release,
                                                    memory_order_relaxed));
}

static pthread_mutexattr_t hot_attr;
static pthread_once_t hot_once = PTHREAD_ONCE_INIT;

static void hot_attr_init(void)
{
    pthread_mutexattr_init(&hot_attr);
    pthread_mutexattr_settype(&hot_attr, PTHREAD_MUTEX_ADAPTIVE_NP);
}

void rt_mutex_init_hot(pthread_mutex_t *mu)
{
    pthread_once(&hot_once, hot_attr_init);
    pthread_mutex_init(mu, &hot_attr);
}

void rt_cond_init_mono(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}

/* Sharded by slot address, not by thread: the sender arms and a worker
 * disarms the same slot, so a per-thread shard would put every worker on
 * the sender's lock. */
static unsigned slot_shard(const rt_slot *s)
{
    uintptr_t p = (uintptr_t)s >> 6;
    return (unsigned)((p ^ (p >> 7) ^ (p >> 13)) % RT_TIMER_SHARDS);
}

static void timer_wake(rt_timer *t)
{
    if (atomic_load_explicit(&t->sleeping, memory_order_relaxed)) {
        pthread_mutex_lock(&t->mu);
        pthread_cond_signal(&t->cv);
        pthread_mutex_unlock(&t->mu);
    }
}

/* Called with the shard lock held. */
static void link_locked(rt_tshard *sh, rt_slot *s)
{
    uint64_t at = s->deadline > sh->scanned ? s->deadline : sh->scanned + 1;
    rt_slot **head = &sh->wheel[at % RT_WHEEL];
    s->tnext = *head;
    if (*head) (*head)->tpprev = &s->tnext;
    *head = s;
    s->tpprev = head;
    s->linked = 1;
    sh->count++;
}

static void unlink_locked(rt_tshard *sh, rt_slot *s)
{
    *s->tpprev = s->tnext;
    if (s->tnext) s->tnext->tpprev = s->tpprev;
    s->tnext = NULL;
    s->tpprev = NULL;
    s->linked = 0;
    sh->count--;
}

void rt_slot_arm(rt_timer *t, rt_slot *s)
{
    if (!s->deadline) return;
    unsigned i = slot_shard(s);
    rt_tshard *sh = &t->shard[i];
    s->shard = (uint8_t)i;
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    pthread_mutex_lock(&sh->mu);
    int was_empty = sh->count == 0;
    link_locked(sh, s);
    pthread_mutex_unlock(&sh->mu);
    if (was_empty) timer_wake(t);
}

void rt_slot_rearm(rt_timer *t, rt_slot *s, uint64_t deadline)
{
    if (!s->deadline) {
        s->deadline = deadline;
        rt_slot_arm(t, s);
        return;
    }
    rt_tshard *sh = &t->shard[s->shard];
    pthread_mutex_lock(&sh->mu);
    if (s->linked) {
        unlink_locked(sh, s);
        s->deadline = deadline;
        link_locked(sh, s);
    }
    pthread_mutex_unlock(&sh->mu);
}

static void disarm(rt_timer *t, rt_slot *s)
{
    if (!s->deadline) return;
    rt_tshard *sh = &t->shard[s->shard];
    int drop = 0;
    pthread_mutex_lock(&sh->mu);
    if (s->linked) {
        unlink_locked(sh, s);
        drop = 1;
    }
    pthread_mutex_unlock(&sh->mu);
    if (drop) rt_slot_release(s);
}

void rt_slot_release(rt_slot *s)
{
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) {
        /* a slot heads the block of its request */
        if (s->pool)
            blk_put(s->pool, s);
        else
            free(s);
    }
}

bool rt_slot_finish(rt_timer *t, rt_slot *s, rt_status st, uint8_t *data, size_t len,
                    uint64_t blame, uint32_t retry_after_ms)
{
    int exp = 0;
    if (!atomic_compare_exchange_strong_explicit(&s->state, &exp, 1, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        free(data);
        return false;
    }
    if (t) disarm(t, s);
    rt_reply r = {
        .status = st, .data = data, .len = len, .blame = blame, .retry_after_ms = retry_after_ms};
    s->cb(s->arg, &r);
    return true;
}

bool rt_slot_fail(rt_timer *t, rt_slot *s, rt_status st, const char *msg, uint32_t retry_after_ms)
{
    if (rt_slot_done(s)) return false;
    rt_reply r;
    rt_reply_error(&r, st, msg, retry_after_ms);
    return rt_slot_finish(t, s, st, r.data, r.len, 0, retry_after_ms);
}

/* Scans bucket(s) up to now; expired slots are unlinked under the lock and
 * failed outside it (the callback may take other locks). */
static size_t timer_scan(rt_timer *t, uint64_t now, int fire_all)
{
    size_t pending = 0;
    for (unsigned i = 0; i < RT_TIMER_SHARDS; i++) {
        rt_tshard *sh = &t->shard[i];
        rt_slot *fire = NULL;
        pthread_mutex_lock(&sh->mu);
        if (sh->count) {
            uint64_t from = sh->scanned + 1;
            if (fire_all || now - sh->scanned >= RT_WHEEL) from = now - RT_WHEEL + 1;
            for (uint64_t ms = from; ms <= now && sh->count; ms++) {
                rt_slot *s = sh->wheel[ms % RT_WHEEL];
                while (s) {
                    rt_slot *next = s->tnext;
                    if (fire_all || s->deadline <= now) {
                        unlink_locked(sh, s);
                        s->tnext = fire; /* unlinked: tnext is the timer's again */
                        fire = s;
                    }
                    s = next;
                }
            }
        }
        sh->scanned = now;
        pending += sh->count;
        pthread_mutex_unlock(&sh->mu);
        while (fire) {
            rt_slot *s = fire;
            fire = s->tnext;
            s->tnext = NULL;
            /* The owner may concurrently finish it; the state CAS arbitrates. */
            int exp = 0;
            if (atomic_compare_exchange_strong_explicit(&s->state, &exp, 1, memory_order_acq_rel,
                                                        memory_order_acquire)) {
                rt_reply r;
                if (fire_all)
                    rt_reply_error(&r, RT_CANCELLED, "runtime stopped", 0);
                else
                    rt_reply_error(&r, RT_DEADLINE_EXCEEDED, "deadline exceeded", 0);
                s->cb(s->arg, &r);
                t->fired++;
            }
            rt_slot_release(s);
        }
    }
    return pending;
}

static void *timer_main(void *arg)
{
    rt_timer *t = arg;
    for (;;) {
        size_t pending = timer_scan(t, rt_now_ms(), 0);
        pthread_mutex_lock(&t->mu);
        if (t->quit) {
            pthread_mutex_unlock(&t->mu);
            break;
        }
        /* Sleep 1 ms while anything is armed; otherwise until an arm wakes us
         * (the 100 ms cap only bounds a lost wake-up, it is not needed for
         * correctness of deadlines already armed). */
        atomic_store_explicit(&t->sleeping, 1, memory_order_relaxed);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        long add_ns = pending ? 1000000L : 100000000L;
        ts.tv_nsec += add_ns;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (pending) {
            pthread_mutex_unlock(&t->mu);
            struct timespec d = {0, add_ns};
            while (nanosleep(&d, &d) == -1 && errno == EINTR) {
            }
            pthread_mutex_lock(&t->mu);
        } else {
            pthread_cond_timedwait(&t->cv, &t->mu, &ts);
        }
        atomic_store_explicit(&t->sleeping, 0, memory_order_relaxed);
        pthread_mutex_unlock(&t->mu);
    }
    return NULL;
}

int rt_timer_start(rt_timer *t)
{
    memset(t, 0, sizeof *t);
    uint64_t now = rt_now_ms();
    for (unsigned i = 0; i < RT_TIMER_SHARDS; i++) {
        rt_mutex_init_hot(&t->shard[i].mu);
        t->shard[i].scanned = now;
    }
    pthread_mutex_init(&t->mu, NULL);
    rt_cond_init_mono(&t->cv);
    return pthread_create(&t->thr, NULL, timer_main, t);
}

void rt_timer_stop(rt_timer *t)
{
    pthread_mutex_lock(&t->mu);
    t->quit = 1;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thr, NULL);
    timer_scan(t, rt_now_ms() + 2 * RT_WHEEL, 1);
    for (unsigned i = 0; i < RT_TIMER_SHARDS; i++)
        pthread_mutex_destroy(&t->shard[i].mu);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
}
