/* readahead_retries: the mmap_lock acquisitions of one thread reading a cold file mapping
 * in order, on this host.
 *
 * Since 6.4 a file fault first takes its VMA's lock, so a fault takes mmap_lock (for read)
 * only when its VMA-locked attempt returned VM_FAULT_RETRY: after waiting for a read with
 * the lock dropped, and (since 5.1) after a lookup that met the readahead mark, dropped the
 * lock to start the next window (do_async_mmap_readahead) and retried without waiting
 * (docs/model.md 11.5).  This drops FILE from the page cache (fdatasync +
 * FADV_DONTNEED), maps it read-only and shared, reads one byte of each page in order and
 * sleeps SLEEP_US after every 64 pages, so that each window's read completes before the
 * scan reaches it (no fault waits for a folio in flight).  The scan runs under the thread
 * name "seqscan", so that its events can be told from the program's start-up:
 *   perf record -e 'mmap_lock:*' -o ra.data ./readahead_retries FILE
 *   perf script -F comm,pid,tid,cpu,time,event,trace --ns -i ra.data | grep '^ *seqscan '
 * On this host (6.18, read_ahead_kb 8192: ra_pages 2048) a 64 MiB file gives 9 read
 * acquisitions: the first fault's retry after its read, and 8 readahead marks.
 *
 * usage: readahead_retries FILE [SLEEP_US=2000] [ADVICE=0 (MADV_NORMAL)]
 * build: cc -O2 -o readahead_retries readahead_retries.c
 * Written for vmlab (MIT licence, like the rest of the project).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE [SLEEP_US=2000] [ADVICE=0]\n", argv[0]);
        return 2;
    }
    int sleep_us = argc > 2 ? atoi(argv[2]) : 2000;
    int advice = argc > 3 ? atoi(argv[3]) : MADV_NORMAL;
    int fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size == 0) {
        perror(argv[1]);
        return 1;
    }
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    unsigned char *map = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    madvise(map, st.st_size, advice);
    long page = sysconf(_SC_PAGESIZE);
    volatile unsigned long sum = 0;
    prctl(PR_SET_NAME, "seqscan");
    for (long i = 0; i * page < st.st_size; i++) {
        sum += map[i * page];
        if (sleep_us > 0 && i % 64 == 63)
            usleep(sleep_us);
    }
    prctl(PR_SET_NAME, "readahead_retr");
    munmap(map, st.st_size);
    close(fd);
    printf("%ld pages read, sum %lu\n", (long)(st.st_size / page), sum);
    return 0;
}
