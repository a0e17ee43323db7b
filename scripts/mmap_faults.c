/* mmap_faults: a small multi-threaded workload for vmlab's perf fault traces.
 *
 * READERS threads read random pages of one shared read-only file mapping
 * (xorshift walk, a pause of SLEEP_US every 64 accesses), while one writer
 * thread loops mmap/touch/munmap of a 64 KiB anonymous region until the
 * readers are done: the writer takes mmap_sem for write over and over, as in
 * Michel Lespinasse's 2010 measurement (MODEL.md section 5).  The file's
 * pages are dropped from the page cache first (fdatasync + FADV_DONTNEED), so
 * the first touches are major faults with real I/O; MADV_RANDOM turns off
 * read-around, so each of them reads one page.  Before its second and
 * later passes, reader 0 drops the whole mapping (MADV_DONTNEED) so that the
 * walk faults again, now on resident pages (minor faults).
 *
 * usage: mmap_faults FILE [READERS=3] [PASSES=2] [SLEEP_US=50]
 * build: cc -O2 -pthread -o mmap_faults mmap_faults.c
 * Written for vmlab (MIT licence, like the rest of the project).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_READERS 64
#define WRITER_BYTES (1 << 16)

static unsigned char *map;
static size_t npages, pagesz;
static int readers = 3, passes = 2, sleep_us = 50;
static atomic_int running;
static volatile unsigned long sink;

static void *reader(void *arg)
{
    long id = (long)arg;
    uint64_t x = 0x9E3779B97F4A7C15ull * (uint64_t)(id + 1);
    unsigned long sum = 0;
    for (int p = 0; p < passes; p++) {
        if (p > 0 && id == 0)
            madvise(map, npages * pagesz, MADV_DONTNEED);
        for (size_t i = 0; i < npages / 2; i++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;      /* xorshift64 */
            size_t pg = (size_t)(x % npages);
            sum += map[pg * pagesz + (x >> 40) % pagesz];
            if (sleep_us > 0 && i % 64 == 63)
                usleep((useconds_t)sleep_us);
        }
    }
    sink += sum;
    atomic_fetch_sub(&running, 1);
    return NULL;
}

static void *writer(void *arg)
{
    unsigned long loops = 0;
    (void)arg;
    while (atomic_load(&running) > 0) {
        void *q = mmap(NULL, WRITER_BYTES, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (q == MAP_FAILED) { perror("mmap"); exit(1); }
        ((volatile char *)q)[0] = 1;                       /* one anon fault */
        munmap(q, WRITER_BYTES);
        loops++;
        usleep(200);
    }
    fprintf(stderr, "mmap_faults: writer did %lu mmap/munmap loops\n", loops);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE [READERS] [PASSES] [SLEEP_US]\n", argv[0]);
        return 2;
    }
    if (argc > 2) readers = atoi(argv[2]);
    if (argc > 3) passes = atoi(argv[3]);
    if (argc > 4) sleep_us = atoi(argv[4]);
    if (readers < 1 || readers > MAX_READERS || passes < 1) {
        fprintf(stderr, "%s: need 1..%d readers and at least one pass\n", argv[0], MAX_READERS);
        return 2;
    }
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) { perror(argv[1]); return 1; }
    struct stat st;
    if (fstat(fd, &st) != 0) { perror("fstat"); return 1; }
    pagesz = (size_t)sysconf(_SC_PAGESIZE);
    npages = (size_t)st.st_size / pagesz;
    if (npages < 2) { fprintf(stderr, "%s: file too small\n", argv[1]); return 1; }
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);          /* start with a cold cache */
    map = mmap(NULL, npages * pagesz, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) { perror("mmap"); return 1; }
    madvise(map, npages * pagesz, MADV_RANDOM);            /* no read-around: one page per major fault */
    pthread_t t[MAX_READERS], w;
    atomic_store(&running, readers);
    pthread_create(&w, NULL, writer, NULL);
    for (long i = 0; i < readers; i++)
        pthread_create(&t[i], NULL, reader, (void *)i);
    for (int i = 0; i < readers; i++)
        pthread_join(t[i], NULL);
    pthread_join(w, NULL);
    munmap(map, npages * pagesz);
    close(fd);
    printf("%lu\n", sink);
    return 0;
}
