/* anon_vma_loops: which first stores of new anonymous mappings take mmap_lock, on this host.
 *
 * A VMA that no merge joined to a neighbour has no anon_vma, and its first fault that needs
 * one (a store to an anonymous page) takes mmap_lock for read to make it: 6.4 falls back to
 * mmap_lock, 6.5 and later take mmap_read_trylock() in vmf_anon_prepare() (docs/model.md
 * 15.8).  This runs N iterations of: mmap a PAGES-page private anonymous chunk, store once
 * to each page, then either munmap it (MODE 0, ebizzy's loop: the next chunk lands where it
 * was and merges into its neighbour) or keep it and map a PROT_NONE page below it (MODE 1:
 * nothing merges).  The loop runs under the thread name "anonscan":
 *   perf record -e 'mmap_lock:*' -o anon.data ./anon_vma_loops 100 128 1
 *   perf script -F comm,tid,time,event,trace --ns -i anon.data | grep '^ *anonscan ' |
 *       grep -c 'start_locking.*write=false'
 * counts the faults' read acquisitions (an munmap's downgrade is an acquire_returned with
 * write=false and no start_locking).  On this host (6.18): MODE 0 gives 0, MODE 1 89 of 100.
 *
 * usage: anon_vma_loops [N=100] [PAGES=128] [MODE=0]
 * build: cc -O2 -o anon_vma_loops anon_vma_loops.c
 * Written for vmlab (MIT licence, like the rest of the project).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 100;
    int pages = argc > 2 ? atoi(argv[2]) : 128;
    int keep = argc > 3 ? atoi(argv[3]) : 0;
    size_t len = (size_t)pages * 4096;
    prctl(PR_SET_NAME, "anonscan");
    for (int i = 0; i < n; i++) {
        char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) {
            perror("mmap");
            return 1;
        }
        for (int p = 0; p < pages; p++)
            m[(size_t)p * 4096] = 1;
        if (keep)
            mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        else
            munmap(m, len);
    }
    prctl(PR_SET_NAME, "anon_vma_loops");
    printf("%d chunks of %d pages, %s\n", n, pages, keep ? "kept apart" : "unmapped");
    return 0;
}
