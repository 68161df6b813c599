/* Running ip, bridge and nft: posix_spawn with an argv array and a fixed absolute path, no
 * shell and no PATH search; stdin fed from memory, stdout and stderr captured (bounded). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mutualis/util.h"
#include "net/net.h"

#define OUT_MAX (1024 * 1024)
#define ERR_MAX 2048

extern char **environ;

static void close_pair(int p[2])
{
    for (int i = 0; i < 2; i++)
        if (p[i] >= 0)
            close(p[i]);
    p[0] = p[1] = -1;
}

int mu_net_run(const char *const argv[], const char *in, char **ret_out, struct mu_err *err)
{
    int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    struct mu_buf out, errb;
    pid_t pid = -1;
    int rc;

    if (!argv || !argv[0] || argv[0][0] != '/')
        return mu_err_set(err, MU_EINVAL, "a command needs an absolute path");
    if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0 || pipe2(perr, O_CLOEXEC) < 0) {
        rc = mu_err_set(err, MU_EIO, "cannot make pipes for %s: %s", argv[0], strerror(errno));
        close_pair(pin);
        close_pair(pout);
        close_pair(perr);
        return rc;
    }
    mu_buf_init(&out);
    mu_buf_init(&errb);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
    posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
    posix_spawn_file_actions_adddup2(&fa, perr[1], 2);
    /* The environment is the agent's own: none of it reaches an argument. */
    int e = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    pin[0] = pout[1] = perr[1] = -1;
    if (e != 0) {
        rc = mu_err_set(err, MU_EIO, "cannot run %s: %s", argv[0], strerror(e));
        goto out;
    }
    /* Feed stdin and drain both outputs without deadlocking on full pipes. */
    size_t in_len = in ? strlen(in) : 0, in_off = 0;
    if (in_len == 0) {
        close(pin[1]);
        pin[1] = -1;
    }
    signal(SIGPIPE, SIG_IGN);
    while (pout[0] >= 0 || perr[0] >= 0 || pin[1] >= 0) {
        struct pollfd fds[3] = {{pout[0], POLLIN, 0}, {perr[0], POLLIN, 0}, {pin[1], POLLOUT, 0}};
        if (poll(fds, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (fds[2].revents) {
            ssize_t n = write(pin[1], in + in_off, in_len - in_off);
            if (n > 0)
                in_off += (size_t)n;
            if (n <= 0 || in_off == in_len) {
                close(pin[1]);
                pin[1] = -1;
            }
        }
        for (int i = 0; i < 2; i++) {
            int *fd = i == 0 ? &pout[0] : &perr[0];
            if (!fds[i].revents)
                continue;
            char buf[4096];
            ssize_t n = read(*fd, buf, sizeof buf);
            if (n > 0) {
                struct mu_buf *b = i == 0 ? &out : &errb;
                size_t cap = i == 0 ? OUT_MAX : ERR_MAX;
                if (b->len + (size_t)n <= cap)
                    mu_buf_append(b, buf, (size_t)n);
            } else if (n == 0 || errno != EINTR) {
                close(*fd);
                *fd = -1;
            }
        }
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status)) {
        rc = mu_err_set(err, MU_EIO, "%s was killed by signal %d", argv[0],
                        WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        goto out;
    }
    rc = WEXITSTATUS(status);
    if (rc != 0) {
        /* One line: the command and what it said. */
        for (size_t i = 0; i < errb.len; i++)
            if (errb.data[i] == '\n' || errb.data[i] == '\r')
                errb.data[i] = ' ';
        struct mu_buf cmd;
        mu_buf_init(&cmd);
        for (size_t i = 0; argv[i] && cmd.len < 300; i++)
            mu_buf_printf(&cmd, "%s%s", i ? " " : "", argv[i]);
        mu_err_set(err, MU_EIO, "`%s` exited with %d: %s", cmd.data ? cmd.data : argv[0], rc,
                   errb.data ? errb.data : "");
        mu_buf_free(&cmd);
    }
    if (ret_out)
        *ret_out = out.data ? mu_buf_steal(&out) : mu_xstrdup("");
out:
    close_pair(pin);
    close_pair(pout);
    close_pair(perr);
    mu_buf_free(&out);
    mu_buf_free(&errb);
    return rc;
}
