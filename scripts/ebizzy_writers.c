/* ebizzy_writers: what one ebizzy -m iteration's two mmap_lock writers cost on this host.
 *
 * ebizzy -mTt maps a chunk (512 KiB by default), stores to every page of it and unmaps it,
 * over and over in every thread: two mmap_lock writers per chunk, the munmap freeing the
 * chunk's pages.  This times mmap() of a chunk and munmap() of the filled chunk, single
 * threaded (no TLB shootdown to other CPUs: a lower bound), and prints the medians of 2001
 * iterations and their mean per call, the mmap_cs_ns vmlab.studies.ladder gives a writer.
 *
 * usage: ebizzy_writers [PAGES=128]
 * build: cc -O2 -o ebizzy_writers ebizzy_writers.c
 * Written for vmlab (MIT licence, like the rest of the project).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#define N 2001

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	int pages = argc > 1 ? atoi(argv[1]) : 128;
	size_t bytes = (size_t)pages * 4096;
	static double map_ns[N], unmap_ns[N];

	if (pages <= 0) {
		fprintf(stderr, "usage: %s [PAGES > 0]\n", argv[0]);
		return 2;
	}
	for (int i = 0; i < N; i++) {
		double t0 = now_ns();
		char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		double t1 = now_ns();
		if (p == MAP_FAILED) {
			perror("mmap");
			return 1;
		}
		for (size_t o = 0; o < bytes; o += 4096)
			p[o] = 1;
		double t2 = now_ns();
		munmap(p, bytes);
		double t3 = now_ns();
		map_ns[i] = t1 - t0;
		unmap_ns[i] = t3 - t2;
	}
	qsort(map_ns, N, sizeof(double), cmp);
	qsort(unmap_ns, N, sizeof(double), cmp);
	printf("%d pages: mmap %.0f ns, munmap of the filled chunk %.0f ns, mean per call %.0f ns\n",
	       pages, map_ns[N / 2], unmap_ns[N / 2], (map_ns[N / 2] + unmap_ns[N / 2]) / 2);
	return 0;
}
