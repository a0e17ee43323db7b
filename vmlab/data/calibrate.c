/* calibrate: measure this machine's page-fault and syscall costs for vmlab.
 *
 * usage: calibrate DIR PAGES ROUNDS [MAJOR_SAMPLES]
 *   DIR            a directory on a real (not tmpfs) file system for the test files
 *   PAGES          pages per batch measurement (e.g. 4096)
 *   ROUNDS         repetitions of every batch measurement
 *   MAJOR_SAMPLES  major faults to time one by one (0: skip)
 *
 * Output, one line per value, "name round value" (ns per operation for batch
 * measurements, ns for each major fault sample):
 *   zero_read      read fault on a fresh anonymous page (maps the shared zero page)
 *   anon_write     write fault on a fresh anonymous page (allocate and zero a page)
 *   cache_hit      read fault on a resident file page, in a one-page mapping (so
 *                  fault-around has no neighbour to map)
 *   cache_around   read fault on a resident file page in a large mapping, touching one
 *                  page in 16 (fault-around maps the whole aligned 16-page window)
 *   around_pages   pages mapped per cache_around fault (from mincore of the mapping)
 *   populate_page  MAP_POPULATE of a resident file: (t(PAGES) - t(1)) / (PAGES - 1) per page,
 *                  each t the least of several timings (16 of one page, 3 of PAGES)
 *   populate_fixed the same measurement's intercept: t(1) - populate_page
 *   mmap_pair      mmap + munmap of 64 KiB anonymous memory, untouched
 *   signal         raise(SIGUSR1) with an empty handler: a signal round trip
 *   null_syscall   syscall(SYS_getppid)
 *   major          one read fault on a file page dropped from the page cache
 *                  (posix_fadvise DONTNEED after fdatasync; MADV_RANDOM: no readahead)
 *   major_skipped  1 when the page cache could not be dropped (tmpfs, ...)
 * Written for vmlab (MIT licence, like the rest of the project).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static size_t PG;
static volatile unsigned long sink;

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void *map_anon(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) die("mmap anon");
    madvise(p, bytes, MADV_NOHUGEPAGE);  /* one fault per 4 KiB page */
    return p;
}

static double zero_read(size_t n)
{
    unsigned char *p = map_anon(n * PG);
    double t = now_ns();
    for (size_t i = 0; i < n; i++) sink += p[i * PG];
    t = now_ns() - t;
    munmap(p, n * PG);
    return t / n;
}

static double anon_write(size_t n)
{
    unsigned char *p = map_anon(n * PG);
    double t = now_ns();
    for (size_t i = 0; i < n; i++) p[i * PG] = 1;
    t = now_ns() - t;
    munmap(p, n * PG);
    return t / n;
}

/* one-page mappings of consecutive file pages, each alone in its VMA (a PROT_NONE
 * anonymous page between two of them), so fault-around finds no neighbour */
static double cache_hit(int fd, size_t n)
{
    unsigned char *area = mmap(NULL, 2 * n * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED) die("mmap area");
    for (size_t i = 0; i < n; i++)
        if (mmap(area + 2 * i * PG, PG, PROT_READ, MAP_SHARED | MAP_FIXED, fd, (off_t)(i * PG)) == MAP_FAILED)
            die("mmap page");
    double t = now_ns();
    for (size_t i = 0; i < n; i++) sink += area[2 * i * PG];
    t = now_ns() - t;
    munmap(area, 2 * n * PG);
    return t / n;
}

/* pages of the mapping at p that are mapped (Rss in /proc/self/smaps) */
static size_t mapped_pages(void *p)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return 0;
    char line[512], want[32];
    snprintf(want, sizeof want, "%lx-", (unsigned long)p);
    int in = 0;
    size_t kb = 0;
    while (fgets(line, sizeof line, f)) {
        if (strchr(line, '-') && strncmp(line, want, strlen(want)) == 0) in = 1;
        else if (in && strncmp(line, "Rss:", 4) == 0) { kb = strtoul(line + 4, NULL, 10); break; }
    }
    fclose(f);
    return kb * 1024 / PG;
}

static long minflt(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_minflt;
}

static double cache_around(int fd, size_t n, double *pages_per_fault)
{
    unsigned char *p = mmap(NULL, n * PG, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) die("mmap file");
    long f0 = minflt();
    double t = now_ns();
    for (size_t i = 0; i < n; i += 16) sink += p[i * PG];
    t = now_ns() - t;
    long faults = minflt() - f0;
    if (faults < 1) faults = 1;
    *pages_per_fault = (double)mapped_pages(p) / (double)faults;
    munmap(p, n * PG);
    return t / (double)faults;
}

static double populate(int fd, size_t n)
{
    double t = now_ns();
    void *p = mmap(NULL, n * PG, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (p == MAP_FAILED) die("mmap populate");
    t = now_ns() - t;
    munmap(p, n * PG);
    return t;
}

/* the least of reps timings: a preemption inflates one timing, never deflates it, so the
 * difference of two minima stays positive where the difference of two timings may not */
static double populate_min(int fd, size_t n, int reps)
{
    double best = populate(fd, n);
    for (int i = 1; i < reps; i++) {
        double t = populate(fd, n);
        if (t < best) best = t;
    }
    return best;
}

static double mmap_pair(size_t n)
{
    double t = now_ns();
    for (size_t i = 0; i < n; i++) {
        void *p = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) die("mmap pair");
        munmap(p, 1 << 16);
    }
    return (now_ns() - t) / n;
}

static void on_signal(int s) { (void)s; sink++; }

static double signal_trip(size_t n)
{
    double t = now_ns();
    for (size_t i = 0; i < n; i++) raise(SIGUSR1);
    return (now_ns() - t) / n;
}

static double null_syscall(size_t n)
{
    double t = now_ns();
    for (size_t i = 0; i < n; i++) syscall(SYS_getppid);
    return (now_ns() - t) / n;
}

static int make_file(const char *dir, size_t n, char *path)
{
    snprintf(path, 4096, "%s/vmlab-calibrate-XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0) die("mkstemp");
    unlink(path);
    unsigned char *buf = malloc(PG);
    for (size_t i = 0; i < n; i++) {
        memset(buf, (int)(i & 0xff) | 1, PG);
        if (write(fd, buf, PG) != (ssize_t)PG) die("write");
    }
    free(buf);
    fdatasync(fd);
    return fd;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s DIR PAGES ROUNDS [MAJOR_SAMPLES]\n", argv[0]);
        return 2;
    }
    PG = (size_t)sysconf(_SC_PAGESIZE);
    size_t n = (size_t)atol(argv[2]);
    int rounds = atoi(argv[3]);
    size_t majors = argc > 4 ? (size_t)atol(argv[4]) : 0;
    if (n < 32 || rounds < 1) {
        fprintf(stderr, "%s: need PAGES >= 32 and ROUNDS >= 1\n", argv[0]);
        return 2;
    }
    signal(SIGUSR1, on_signal);
    char path[4096];
    int fd = make_file(argv[1], n, path);
    /* read the file once so that every page is resident */
    unsigned char *warm = mmap(NULL, n * PG, PROT_READ, MAP_SHARED, fd, 0);
    for (size_t i = 0; i < n; i++) sink += warm[i * PG];
    munmap(warm, n * PG);

    for (int r = 0; r < rounds; r++) {
        double ppf;
        printf("zero_read %d %.1f\n", r, zero_read(n));
        printf("anon_write %d %.1f\n", r, anon_write(n));
        printf("cache_hit %d %.1f\n", r, cache_hit(fd, n));
        printf("cache_around %d %.1f\n", r, cache_around(fd, n, &ppf));
        printf("around_pages %d %.2f\n", r, ppf);
        double t1 = populate_min(fd, 1, 16), tn = populate_min(fd, n, 3);
        double per = (tn - t1) / (double)(n - 1);
        printf("populate_page %d %.1f\n", r, per);
        printf("populate_fixed %d %.1f\n", r, t1 - per);
        printf("mmap_pair %d %.1f\n", r, mmap_pair(n));
        printf("signal %d %.1f\n", r, signal_trip(n));
        printf("null_syscall %d %.1f\n", r, null_syscall(n * 16));
        fflush(stdout);
    }
    if (majors > 0) {
        size_t m = majors * 8 > n ? majors * 8 : n;
        char mpath[4096];
        int mfd = make_file(argv[1], m, mpath);
        posix_fadvise(mfd, 0, 0, POSIX_FADV_DONTNEED);
        unsigned char *p = mmap(NULL, m * PG, PROT_READ, MAP_SHARED, mfd, 0);
        if (p == MAP_FAILED) die("mmap major");
        madvise(p, m * PG, MADV_RANDOM);
        unsigned char vec[1];
        mincore(p, PG, vec);
        if (vec[0] & 1) {
            printf("major_skipped 0 1\n");
        } else {
            uint64_t x = 0x9E3779B97F4A7C15ull;
            unsigned char *seen = calloc(m, 1);
            for (size_t k = 0; k < majors; k++) {
                size_t pg;
                do {
                    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                    pg = (size_t)(x % m);
                } while (seen[pg]);
                seen[pg] = 1;
                double t = now_ns();
                sink += p[pg * PG];
                printf("major %zu %.1f\n", k, now_ns() - t);
            }
            free(seen);
        }
        munmap(p, m * PG);
        close(mfd);
    }
    close(fd);
    return 0;
}
