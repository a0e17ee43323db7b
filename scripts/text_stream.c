/* text_stream: a program whose own text is hot while it streams a file through read(),
 * the case where the kernel reclaims a program's text under a memory limit.
 *
 * It reads FILE in 32 KiB read() calls and runs four loops over each buffer, each loop in
 * a 4 KiB-aligned function of its own (four text pages, every one used for every buffer);
 * after each call it sleeps SLEEP_US microseconds (0: none).  With a 4.4 MB FILE
 * (seq 1 600000 > seq600k.txt) it measured the numbers of docs/model.md 8.3 and 11.7.1:
 *   vmlab validate --cold --limits-mb 2,1.1,0.6,0.4 -- ./text_stream seq600k.txt
 * (major faults: its text read back after reclaim; pages read: /sys/block/DEV/stat's
 * sectors around a run in a memory cgroup).  The sleep showed that a program that blocks
 * keeps its TLB on that host: the same major faults with 0, 20 or 200 us.
 *
 * usage: text_stream FILE [SLEEP_US=0] [PASSES=1]
 * build: cc -O1 -o text_stream text_stream.c
 * Written for vmlab (MIT licence, like the rest of the project).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static unsigned long long acc;

#define LOOP(n) \
    __attribute__((noinline, aligned(4096))) static void loop##n(const unsigned char *b, \
                                                                 long len) \
    { \
        for (long i = 0; i < len; i++) \
            acc = acc * 131 + b[i] + n; \
    }
LOOP(1) LOOP(2) LOOP(3) LOOP(4)

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE [SLEEP_US=0] [PASSES=1]\n", argv[0]);
        return 2;
    }
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) {
        perror(argv[1]);
        return 1;
    }
    long sleep_us = argc > 2 ? atol(argv[2]) : 0;
    int passes = argc > 3 ? atoi(argv[3]) : 1;
    static unsigned char buf[32768];
    for (int p = 0; p < passes; p++) {
        if (lseek(fd, 0, SEEK_SET) < 0) {
            perror("lseek");
            return 1;
        }
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) > 0) {
            loop1(buf, n);
            loop2(buf, n);
            loop3(buf, n);
            loop4(buf, n);
            if (sleep_us) {
                struct timespec ts = {sleep_us / 1000000, (sleep_us % 1000000) * 1000};
                nanosleep(&ts, 0);
            }
        }
        if (n < 0) {
            perror("read");
            return 1;
        }
    }
    printf("%llu\n", acc);
    return 0;
}
