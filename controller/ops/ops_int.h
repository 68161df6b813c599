/* Inside ops/ only: the engine's shared state, the per-node workers and their job queue.
 *
 * Locking: one mutex (ops->mu) guards the worker list, every queue, the in-flight set, the
 * job completion fields and the stop/kick flags. It is never held across a store or virt
 * call. A worker's conn is touched only by that worker's thread (virt.h: one thread per
 * conn), so anything that needs a node (an operation, a probe, a reconcile pass over the
 * node) is a job on the node's queue. */
#ifndef MU_OPS_INT_H
#define MU_OPS_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "ops/ops.h"
#include "virt/virt.h"

struct mu_ops_worker;

/* A job run on a node's worker. An operation job (call == NULL) carries its row; a call job
 * runs call(ops, worker, node_id, err) and reports to a waiter through rc/err/done. A call
 * job is shared by the worker and its waiter (refs): whoever drops the last reference frees
 * it, so a waiter that gives up on a hanging node leaves nothing dangling. */
typedef int (*mu_ops_call_fn)(struct mu_ops *ops, struct mu_ops_worker *w, int64_t node_id,
                              struct mu_err *err);
struct mu_ops_job {
    struct mu_op op;
    mu_ops_call_fn call;
    bool reconcile; /* a reconcile pass (at most one queued per worker) */
    int rc;
    struct mu_err err;
    bool done;
    int refs;
    struct mu_ops_job *next;
};

struct mu_ops_worker {
    struct mu_ops *ops;
    int64_t node_id;
    char *node_name;
    struct mu_virt_conn *conn;
    pthread_t thread;
    pthread_cond_t cond;
    struct mu_ops_job *head, *tail;
    bool stop;
    bool reconcile_queued;
    struct mu_ops_worker *next;
};

struct mu_ops {
    struct mu_store *store;
    char *data_dir;
    int64_t stop_timeout_ms;
    int64_t op_timeout_ms;
    int64_t reconcile_interval_ms;
    bool quarantine; /* orphan_policy "quarantine" */

    pthread_mutex_t mu;
    pthread_cond_t wake;      /* dispatcher: kicked or stopping */
    pthread_cond_t rec_wake;  /* reconciler thread: stopping */
    pthread_cond_t done_cond; /* call jobs completed */
    bool stopping;
    bool kicked;
    struct mu_ops_worker *workers;
    int64_t *inflight;
    size_t ninflight, capinflight;

    pthread_mutex_t rec_mu; /* one reconcile pass at a time */
    pthread_t dispatcher, reconciler;
};

/* Submits a call job to node_id's worker (created on first use), at the head of its queue
 * when urgent. *ret_job holds the caller's reference. MU_EUNAVAIL when stopping,
 * MU_ENOTFOUND for an unknown node, MU_EBUSY for a reconcile already queued. */
int mu_ops_submit_call(struct mu_ops *ops, int64_t node_id, mu_ops_call_fn call, bool urgent,
                       bool reconcile, struct mu_ops_job **ret_job, struct mu_err *err);
/* Waits until the job is done, until deadline_mono_ms or until the engine stops; then drops
 * the caller's reference. Returns the job's rc (its err copied) or MU_EUNAVAIL. */
int mu_ops_wait_call(struct mu_ops *ops, struct mu_ops_job *job, int64_t deadline_mono_ms,
                     const char *what, struct mu_err *err);

/* steps.c: runs the remaining steps of an operation on worker w. */
void mu_ops_run_op(struct mu_ops *ops, struct mu_ops_worker *w, const struct mu_op *op);
/* Finishes a failed operation and logs it (also used by the dispatcher for operations that
 * cannot reach a worker). */
void mu_ops_fail_op(struct mu_ops *ops, const struct mu_op *op, const char *error);

/* reconcile.c: one reconcile pass over one node (a call job). */
int mu_ops_reconcile_node(struct mu_ops *ops, struct mu_ops_worker *w, int64_t node_id,
                          struct mu_err *err);
/* The capacity probe (a call job): reads node info and stores it, or stores the error. */
int mu_ops_probe_node(struct mu_ops *ops, struct mu_ops_worker *w, int64_t node_id,
                      struct mu_err *err);

/* Maps a hypervisor state to the VM's observed state name. */
const char *mu_ops_observed_of(enum mu_virt_state s);
/* Volume and domain names (virt.h naming). */
void mu_ops_disk_vol(const char *uuid, char *out, size_t outlen);
/* The VM's NoCloud seed volume "mu-<uuid>.seed.iso" (networks issue). */
void mu_ops_seed_vol(const char *uuid, char *out, size_t outlen);

/* fault.c: reads MU_FAULT_POINT once. */
void mu_ops_fault_init(void);

#endif
