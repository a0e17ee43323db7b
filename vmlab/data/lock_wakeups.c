/* lock_wakeups: how long a thread woken from an mmap_lock wait takes to run, on this host
 * with its CPUs busy (docs/model.md 15.14, Costs.lock_wakeup_ns; vmlab.studies.lock_wakeups
 * builds and runs it: scripts/measure_programs.py --lock-wakeups, vmlab calibrate
 * --lock-wakeups LOAD).
 *
 * An app start in small: NFAULT threads read one byte of random pages of cold files (dropped
 * from the page cache first; MADV_RANDOM, so no readahead), spinning 20 us between reads;
 * NWRITE threads mmap a 512 KiB anonymous chunk, touch it, mprotect it read-only and munmap
 * it, sleeping GAP_US between calls, WRITES times; NBUSY threads spin until the others are
 * done.  Under per-VMA locks (6.4 and later) the faults' retries after their reads take
 * mmap_lock for read and meet the writers.  Captured with
 *   perf record -e 'mmap_lock:*' -o w.data ./lock_wakeups 16 400 2 400 100 4 FILE...
 *   perf script -F comm,pid,tid,cpu,time,event,trace --ns -i w.data > w.txt
 * vmlab.studies.lock_wakeups.wakeup_delays() takes from it, for each acquisition that
 * waited, the time from the release that let it go to its acquire_returned: the woken
 * thread's wake-up and its wait for a CPU, which it spends holding the lock (a reader:
 * rwsem_mark_wake() grants it before waking it).
 *
 * usage: lock_wakeups NFAULT FAULTS NWRITE WRITES GAP_US NBUSY FILE...
 * build: cc -O2 -pthread -o lock_wakeups lock_wakeups.c
 * Written for vmlab (MIT licence, like the rest of the project).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int nfiles, faults, writes, gap_us;
static unsigned char **maps;
static long *npages;
static volatile int stop;

static void spin_us(int us)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    do clock_gettime(CLOCK_MONOTONIC, &b);
    while ((b.tv_sec - a.tv_sec) * 1000000L + (b.tv_nsec - a.tv_nsec) / 1000 < us);
}

static void *faulter(void *arg)
{
    unsigned s = (unsigned)(long)arg * 2654435761u + 1;
    volatile unsigned long sum = 0;
    prctl(PR_SET_NAME, "faulter");
    for (int i = 0; i < faults; i++) {
        s = s * 1103515245u + 12345u;
        int f = (s >> 8) % nfiles;
        s = s * 1103515245u + 12345u;
        long p = ((unsigned long)s >> 4) % npages[f];
        sum += maps[f][p * 4096];
        spin_us(20);
    }
    return NULL;
}

static void *writer(void *arg)
{
    (void)arg;
    prctl(PR_SET_NAME, "writer");
    for (int i = 0; i < writes; i++) {
        size_t len = 512 * 1024;
        char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            return NULL;
        m[0] = 1;
        usleep(gap_us);
        mprotect(m, len, PROT_READ);
        usleep(gap_us);
        munmap(m, len);
        usleep(gap_us);
    }
    return NULL;
}

static void *busy(void *arg)
{
    (void)arg;
    prctl(PR_SET_NAME, "busy");
    volatile unsigned long x = 0;
    while (!stop)
        x++;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 8) {
        fprintf(stderr, "usage: %s NFAULT FAULTS NWRITE WRITES GAP_US NBUSY FILE...\n", argv[0]);
        return 2;
    }
    int nf = atoi(argv[1]), nw = atoi(argv[3]), nb = atoi(argv[6]);
    faults = atoi(argv[2]);
    writes = atoi(argv[4]);
    gap_us = atoi(argv[5]);
    nfiles = argc - 7;
    maps = calloc(nfiles, sizeof *maps);
    npages = calloc(nfiles, sizeof *npages);
    for (int i = 0; i < nfiles; i++) {
        int fd = open(argv[7 + i], O_RDONLY);
        struct stat st;
        if (fd < 0 || fstat(fd, &st)) { perror(argv[7 + i]); return 1; }
        fdatasync(fd);
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        if (st.st_size < 4096) { fprintf(stderr, "%s: smaller than a page\n", argv[7 + i]); return 1; }
        maps[i] = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (maps[i] == MAP_FAILED) { perror("mmap"); return 1; }
        madvise(maps[i], st.st_size, MADV_RANDOM);
        npages[i] = st.st_size / 4096;
        close(fd);
    }
    pthread_t t[256];
    if (nf < 0 || nw < 0 || nb < 0 || nf + nw + nb > 256) {
        fprintf(stderr, "at most 256 threads in all\n");
        return 2;
    }
    int n = 0;
    for (int i = 0; i < nb; i++) pthread_create(&t[n++], NULL, busy, NULL);
    int first = n;
    for (int i = 0; i < nw; i++) pthread_create(&t[n++], NULL, writer, NULL);
    for (int i = 0; i < nf; i++) pthread_create(&t[n++], NULL, faulter, (void *)(long)i);
    for (int i = first; i < n; i++) pthread_join(t[i], NULL);
    stop = 1;
    for (int i = 0; i < first; i++) pthread_join(t[i], NULL);
    return 0;
}
