/* ops/: persisted operations and the reconcile loop.
 *
 * Every mutating VM action is a row in the operations table (store/provision.h), written
 * in the same transaction as the change that asked for it. The engine runs them:
 * a dispatcher thread picks due operations and hands each to the worker of its node (one
 * thread per node, each with its own mu_virt_conn, so a dead or hanging node never blocks
 * the others). An operation is a list of named steps; each step is idempotent (it looks up
 * by UUID or volume name before creating), its completion is recorded with
 * mu_store_op_step, a transient failure is retried with exponential backoff (1 s .. 60 s)
 * until the operation's deadline, and a final failure leaves a clear error naming the step.
 *
 *   vm.create : image (copy the base image to the node, verified) → disk (overlay) →
 *               define → start → done (observed running)
 *   vm.start  : start                     vm.stop  : stop (ACPI, timeout, then destroy)
 *   vm.reboot : reboot (ACPI)             vm.resize: define (redefine) → disk (grow)
 *   vm.delete : destroy → undefine → disk (delete volumes: disk, console log, seed) → purge
 *   (networks) vm.create also runs, between disk and define: filters (the nwfilter
 *   "mu-net-<id>" of each network of the VM's NICs defined on the node, redefined if its
 *   rules changed) → seed (the NoCloud seed ISO built from the NICs and user-data and
 *   uploaded as "mu-<uuid>.seed.iso"); define (and resize's redefine) attach the seed as a
 *   read-only IDE CD-ROM and one filtered bridge NIC per mu_nic.
 *   net.filter: claim (recorded before the rules are read, see steps.c) → define
 *   (params {"network_id":N}: redefine that network's filter on the
 *   operation's node; libvirt re-applies it to running interfaces). Not tied to a VM.
 *
 * The reconciler runs at start and every reconcile_interval_ms: resumes unfinished
 * operations (their recorded step tells where to continue), lists each node's domains
 * carrying Mutualis metadata and removes those no VM owns (or leaves them, renamed in the
 * log as quarantined, when orphan_policy is "quarantine"), marks VMs whose domain vanished
 * as observed "missing", and brings power state back to the desired state by queueing
 * vm.start / vm.stop operations. Node capacity (cpus, memory, pool) is refreshed there too.
 *
 * A transient failure is MU_EUNAVAIL, MU_EIO or MU_EBUSY (node unreachable, libvirt or
 * storage I/O); the retry comes min(60 s, 1 s x 2^attempts) later, and past the deadline
 * (the operation's deadline_ms, and at most op_timeout_ms after it was created) the
 * operation fails with "step <name> failed after N attempts: <detail>". Anything else
 * (MU_EINVAL, MU_ENOTFOUND of a base volume, MU_ECONFLICT...) fails at once with
 * "step <name> failed: <detail>". Each finished operation logs one line
 * "operation finished id= kind= vm= ms= outcome=" (warn with error= when it failed).
 * Observed state on success: create, start, reboot -> running; stop -> shutoff; resize ->
 * what the domain is (shutoff); delete -> "deleted" after undefine, then the row is purged.
 * A failed operation leaves the VM's observed state as found on the node (a create that
 * never defined its domain: "error") with the error as last_error.
 *
 * Serial consoles: <data_dir>/console is created with mode 01777 (world-writable, sticky,
 * like /tmp) because a node's libvirtd may be a session daemon running as another user,
 * whose QEMU must create <uuid>.log there.
 *
 * mu_ops_start calls mu_virt_init (idempotent); the process calls mu_virt_shutdown after
 * mu_ops_stop when it is done with libvirt.
 *
 * Test-only fault hook: mu_fault_point("create.after_define") kills the process with
 * SIGKILL when the environment variable MU_FAULT_POINT names that point (read once, at
 * mu_ops_start or first use). The crash tests use these points; "after" points lie
 * between a step's effect on the node and its record in the store, so a resumed operation
 * redoes that step (every step is idempotent):
 *   create.before_image  create.after_image  create.after_disk  create.after_define
 *   create.after_start  create.after_filters  create.after_seed
 *   filter.before_claim  filter.after_claim  filter.after_define
 *   delete.before_destroy  delete.after_destroy  delete.after_undefine  delete.after_disk
 *   delete.after_purge
 *   start.before_start  start.after_start      stop.before_stop  stop.after_stop
 *   reboot.before_reboot  reboot.after_reboot
 *   resize.before_define  resize.after_define  resize.after_disk */
#ifndef MU_OPS_H
#define MU_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "mutualis/err.h"
#include "store/provision.h"
#include "store/store.h"

struct mu_ops;

struct mu_ops_opts {
    struct mu_store *store;
    const char *data_dir;          /* serial logs go to <data_dir>/console/<uuid>.log */
    int64_t stop_timeout_ms;       /* ACPI shutdown grace (default 60000; tests less) */
    int64_t op_timeout_ms;         /* deadline of an operation (default 15 min) */
    int64_t reconcile_interval_ms; /* default 30000 */
    const char *orphan_policy;     /* "remove" (default) or "quarantine" */
    /* Placement inputs for resize admission are computed by the caller; the engine needs
     * nothing from sched/. */
};

struct mu_ops *mu_ops_start(const struct mu_ops_opts *opts, struct mu_err *err);
/* Stops the dispatcher, the reconciler and the workers (waits for running steps). */
void mu_ops_stop(struct mu_ops *ops);
/* Wakes the dispatcher: an operation was just inserted. */
void mu_ops_kick(struct mu_ops *ops);
/* Runs one reconcile pass now, synchronously (tests, and after a restart). */
int mu_ops_reconcile(struct mu_ops *ops, struct mu_err *err);
/* Connects to the node through its worker, reads capacity and capabilities and stores
 * them (mu_store_node_set_info). Waits up to timeout_ms. MU_EUNAVAIL if unreachable. */
int mu_ops_node_probe(struct mu_ops *ops, int64_t node_id, int64_t timeout_ms, struct mu_err *err);
/* Forgets a deleted node's worker and connection. */
void mu_ops_node_forget(struct mu_ops *ops, int64_t node_id);

/* Test-only: SIGKILL this process if MU_FAULT_POINT equals name. */
void mu_fault_point(const char *name);

#endif
