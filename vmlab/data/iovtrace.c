/* iovtrace: run a program and log the user buffers the kernel writes for the system calls
 * that take them through a vector (readv, preadv, preadv2, recvmsg, recvmmsg,
 * process_vm_readv).
 *
 * usage: iovtrace LOG PROGRAM ARGS...
 * Runs PROGRAM (and every process and thread it starts) under ptrace, with a seccomp
 * filter that stops it only at those calls, so everything else runs at full speed.  At
 * each such call's return, one line goes to LOG (flushed at once):
 *
 *     PID TID NR ARG0 ARG1 ARG2 RESULT ADDR:LEN ADDR:LEN ...
 *
 * (decimal PID/TID/NR/RESULT, hexadecimal arguments and addresses): the ranges the kernel
 * wrote, in order, cut to the call's result (bytes, or for recvmmsg each message's
 * msg_len; recvmsg and recvmmsg also list the address and control buffers with the
 * lengths the kernel returned and the msghdr fields it updated).  The vector itself is
 * read from the tracee's memory at the call's entry, when it is what the kernel reads.
 * vmlab's lackey recording runs valgrind under it: valgrind's --trace-syscalls prints
 * only the vector's address, not the buffers in it.
 * x86-64 only.  Written for vmlab (MIT licence, like the rest of the project).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#if !defined(__x86_64__)
#error "iovtrace is written for x86-64"
#endif

#define MAX_VEC 1024
#define MAX_THREADS 4096

struct pending {
    pid_t tid;
    int state;                      /* 0 running, 1 after the seccomp stop, 2 after entry */
    long nr, a0, a1, a2, a3;
    int n;                          /* vector entries read at entry */
    uint64_t base[MAX_VEC], len[MAX_VEC];
    uint64_t name, control;         /* recvmsg: msg_name, msg_control */
};

static struct pending *table[MAX_THREADS];
static FILE *logf;

static struct pending *slot(pid_t tid, int create)
{
    for (int i = 0; i < MAX_THREADS; i++)
        if (table[i] && table[i]->tid == tid)
            return table[i];
    if (!create)
        return NULL;
    for (int i = 0; i < MAX_THREADS; i++)
        if (!table[i]) {
            table[i] = calloc(1, sizeof(struct pending));
            if (table[i]) {
                table[i]->tid = tid;
                table[i]->nr = -1;
            }
            return table[i];
        }
    return NULL;
}

static void drop(pid_t tid)
{
    for (int i = 0; i < MAX_THREADS; i++)
        if (table[i] && table[i]->tid == tid) {
            free(table[i]);
            table[i] = NULL;
        }
}

static int peek(pid_t tid, uint64_t addr, void *buf, size_t n)
{
    struct iovec local = {buf, n}, remote = {(void *)addr, n};
    return process_vm_readv(tid, &local, 1, &remote, 1, 0) == (ssize_t)n ? 0 : -1;
}

static void read_vector(struct pending *p, uint64_t iov, uint64_t cnt)
{
    p->n = 0;
    if (cnt > MAX_VEC)
        cnt = MAX_VEC;
    struct iovec v[MAX_VEC];
    if (cnt && peek(p->tid, iov, v, cnt * sizeof(struct iovec)) == 0) {
        for (uint64_t i = 0; i < cnt; i++) {
            p->base[i] = (uint64_t)v[i].iov_base;
            p->len[i] = v[i].iov_len;
        }
        p->n = (int)cnt;
    }
}

static void print_cut(struct pending *p, int from, int to, long result)
{
    long left = result;
    for (int i = from; i < to && left > 0; i++) {
        uint64_t k = p->len[i] < (uint64_t)left ? p->len[i] : (uint64_t)left;
        if (k)
            fprintf(logf, " %llx:%llx", (unsigned long long)p->base[i], (unsigned long long)k);
        left -= (long)k;
    }
}

static void on_entry(pid_t tid, struct user_regs_struct *r)
{
    struct pending *p = slot(tid, 1);
    if (!p)
        return;
    p->nr = (long)r->orig_rax;
    p->a0 = (long)r->rdi;
    p->a1 = (long)r->rsi;
    p->a2 = (long)r->rdx;
    p->a3 = (long)r->r10;
    p->n = 0;
    p->name = p->control = 0;
    if (p->nr == SYS_readv || p->nr == SYS_preadv || p->nr == SYS_preadv2
        || p->nr == SYS_process_vm_readv) {
        read_vector(p, r->rsi, r->rdx);
    } else if (p->nr == SYS_recvmsg) {
        struct msghdr m;
        if (peek(tid, r->rsi, &m, sizeof m) == 0) {
            read_vector(p, (uint64_t)m.msg_iov, m.msg_iovlen);
            p->name = (uint64_t)m.msg_name;
            p->control = (uint64_t)m.msg_control;
        }
    }
}

static void on_exit_stop(pid_t tid, struct user_regs_struct *r)
{
    struct pending *p = slot(tid, 0);
    if (!p)
        return;
    long res = (long)r->rax;
    pid_t pid = tid;
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/status", tid);
    FILE *f = fopen(path, "r");
    if (f) {
        while (fgets(buf, sizeof buf, f))
            if (sscanf(buf, "Tgid: %d", &pid) == 1)
                break;
        fclose(f);
    }
    fprintf(logf, "%d %d %ld %lx %lx %lx %ld", pid, tid, p->nr, p->a0, p->a1, p->a2, res);
    if (res > 0) {
        if (p->nr == SYS_recvmsg) {
            struct msghdr m;
            print_cut(p, 0, p->n, res);
            if (peek(tid, (uint64_t)p->a1, &m, sizeof m) == 0) {
                if (p->name && m.msg_namelen)
                    fprintf(logf, " %llx:%x", (unsigned long long)p->name, m.msg_namelen);
                if (p->control && m.msg_controllen)
                    fprintf(logf, " %llx:%zx", (unsigned long long)p->control,
                            (size_t)m.msg_controllen);
            }
            /* the kernel writes back msg_namelen, msg_controllen and msg_flags */
            fprintf(logf, " %llx:%zx", (unsigned long long)(p->a1 + offsetof(struct msghdr,
                    msg_namelen)), sizeof(socklen_t));
            fprintf(logf, " %llx:%zx", (unsigned long long)(p->a1 + offsetof(struct msghdr,
                    msg_controllen)), sizeof(size_t) + sizeof(int));
        } else if (p->nr == SYS_recvmmsg) {
            for (long k = 0; k < res && k < MAX_VEC; k++) {
                struct mmsghdr mm;
                uint64_t at = (uint64_t)p->a1 + k * sizeof(struct mmsghdr);
                if (peek(tid, at, &mm, sizeof mm) != 0)
                    break;
                struct pending q;
                q.tid = tid;
                read_vector(&q, (uint64_t)mm.msg_hdr.msg_iov, mm.msg_hdr.msg_iovlen);
                print_cut(&q, 0, q.n, mm.msg_len);
                if (mm.msg_hdr.msg_name && mm.msg_hdr.msg_namelen)
                    fprintf(logf, " %llx:%x", (unsigned long long)mm.msg_hdr.msg_name,
                            mm.msg_hdr.msg_namelen);
                if (mm.msg_hdr.msg_control && mm.msg_hdr.msg_controllen)
                    fprintf(logf, " %llx:%zx", (unsigned long long)mm.msg_hdr.msg_control,
                            (size_t)mm.msg_hdr.msg_controllen);
                fprintf(logf, " %llx:%zx", (unsigned long long)at, sizeof(struct mmsghdr));
            }
        } else {
            print_cut(p, 0, p->n, res);
        }
    }
    fprintf(logf, "\n");
    fflush(logf);
    p->nr = -1;
}

/* Resume a tracee: through the next syscall stop while one of its calls is being followed
 * (a signal may interrupt the call), else until the next event. */
static void resume(pid_t tid, int sig)
{
    struct pending *p = slot(tid, 0);
    ptrace(p && p->state ? PTRACE_SYSCALL : PTRACE_CONT, tid, 0, sig);
}

static int install_filter(void)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_readv, 6, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_preadv, 5, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_preadv2, 4, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_recvmsg, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_recvmmsg, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_process_vm_readv, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE),
    };
    struct sock_fprog prog = {sizeof f / sizeof f[0], f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s LOG PROGRAM ARGS...\n", argv[0]);
        return 125;
    }
    logf = fopen(argv[1], "w");
    if (!logf) {
        perror(argv[1]);
        return 125;
    }
    pid_t child = fork();
    if (child < 0) {
        perror("fork");
        return 125;
    }
    if (child == 0) {
        if (ptrace(PTRACE_TRACEME, 0, 0, 0) != 0 || raise(SIGSTOP) != 0) {
            perror("ptrace");
            _exit(125);
        }
        if (install_filter() != 0) {
            perror("seccomp");
            _exit(125);
        }
        execvp(argv[2], argv + 2);
        perror(argv[2]);
        _exit(127);
    }
    int status;
    if (waitpid(child, &status, 0) != child || !WIFSTOPPED(status)) {
        fprintf(stderr, "iovtrace: the child did not stop\n");
        return 125;
    }
    long opts = PTRACE_O_TRACESECCOMP | PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACECLONE
              | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACEEXEC
              | PTRACE_O_EXITKILL;
    if (ptrace(PTRACE_SETOPTIONS, child, 0, opts) != 0) {
        perror("PTRACE_SETOPTIONS");
        return 125;
    }
    ptrace(PTRACE_CONT, child, 0, 0);
    int code = 0;
    for (;;) {
        pid_t tid = waitpid(-1, &status, __WALL);
        if (tid < 0) {
            if (errno == EINTR)
                continue;
            break;                              /* no tracee left */
        }
        if (WIFEXITED(status) || WIFSIGNALED(status)) {
            drop(tid);
            if (tid == child)
                code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            continue;
        }
        if (!WIFSTOPPED(status))
            continue;
        int sig = WSTOPSIG(status);
        int event = status >> 16;
        struct user_regs_struct regs;
        if (sig == SIGTRAP && event == PTRACE_EVENT_SECCOMP) {
            if (ptrace(PTRACE_GETREGS, tid, 0, &regs) == 0) {
                on_entry(tid, &regs);
                struct pending *p = slot(tid, 0);
                if (p)
                    p->state = 1;
            }
            resume(tid, 0);
        } else if (sig == (SIGTRAP | 0x80)) {
            /* after the seccomp stop: maybe a syscall-entry stop first (rax -ENOSYS), then
             * the exit stop with the call's result */
            struct pending *p = slot(tid, 0);
            if (p && p->state && ptrace(PTRACE_GETREGS, tid, 0, &regs) == 0) {
                if (p->state == 1 && (long)regs.rax == -ENOSYS) {
                    p->state = 2;
                } else {
                    on_exit_stop(tid, &regs);
                    p->state = 0;
                }
            }
            resume(tid, 0);
        } else if (sig == SIGTRAP && event) {   /* clone, fork, exec: not a signal */
            resume(tid, 0);
        } else if (event == PTRACE_EVENT_STOP || (sig == SIGSTOP && !event && !slot(tid, 0)
                                                   && tid != child)) {
            slot(tid, 1);                       /* a new thread's first stop */
            resume(tid, 0);
        } else {
            resume(tid, sig);                   /* a signal for the program */
        }
    }
    fclose(logf);
    return code;
}
