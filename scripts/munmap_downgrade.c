/* munmap_downgrade: an munmap's mmap_lock hold split at its downgrade, on this host.
 *
 * Since 4.20 an munmap takes mmap_lock for write, detaches the VMAs, then downgrades the
 * lock to read (mmap_write_downgrade(): the tracepoint mmap_lock_acquire_returned with
 * write=false) and zaps the pages and frees the page tables holding it for read only.
 * This loops N times over: mmap a PAGES-page anonymous chunk (default 128: ebizzy's
 * 512 KiB), write every page, munmap it; run it under
 *   perf record -e 'mmap_lock:*' -o munmap.data ./munmap_downgrade
 *   perf script --ns -i munmap.data > munmap.txt
 * and split each munmap's hold at its downgrade (docs/model.md 15.13) with
 *   vmlab.trace.readers.mmap_lock.read_capture("munmap.txt").downgrade_parts()
 * The faults take their VMA locks (6.4 and later), which have no tracepoint.
 *
 * usage: munmap_downgrade [PAGES=128] [N=2001]
 * build: cc -O2 -o munmap_downgrade munmap_downgrade.c
 * Written for vmlab (MIT licence, like the rest of the project).
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

int main(int argc, char **argv)
{
	int pages = argc > 1 ? atoi(argv[1]) : 128;
	int n = argc > 2 ? atoi(argv[2]) : 2001;
	size_t bytes = (size_t)pages * 4096;

	if (pages <= 0 || n <= 0) {
		fprintf(stderr, "usage: %s [PAGES > 0] [N > 0]\n", argv[0]);
		return 2;
	}
	for (int i = 0; i < n; i++) {
		char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			       -1, 0);
		if (p == MAP_FAILED) {
			perror("mmap");
			return 1;
		}
		for (size_t o = 0; o < bytes; o += 4096)
			p[o] = 1;
		if (munmap(p, bytes) != 0) {
			perror("munmap");
			return 1;
		}
	}
	return 0;
}
