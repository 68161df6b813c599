/* A test-only SQLite VFS that wraps the default one and appends a line to a log file on
 * every xSync ("sync <file>"), before the sync returns. The durability tests read it to
 * prove that an acknowledged change was synced before the answer (a kill -9 test cannot
 * tell synchronous=FULL from OFF in WAL mode, see env-notes). */
#ifndef MU_STORE_TEST_VFS_H
#define MU_STORE_TEST_VFS_H

/* Registers the VFS (once per process) and returns its name for mu_store_opts.vfs. */
const char *mu_store_test_sync_vfs(const char *log_path);

#endif
