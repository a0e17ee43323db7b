/* writer_calls: what each mmap_lock writer call holds on this host, for a 512 KiB chunk.
 *
 * The hold of a LOCK_W record of known call (vmlab's Costs.hold_<call>_ns, docs/model.md
 * 15.12) is the call's time in the kernel, nearly all of it under mmap_lock for write.  This
 * times, single threaded (no TLB shootdown to other CPUs: lower bounds for many threads),
 * the median of 2001 calls of each on a PAGES-page chunk (default 128: ebizzy's 512 KiB):
 *   mmap      of a fresh anonymous chunk;
 *   munmap    of the chunk with every page written (the zap and the frees);
 *   mprotect  of the filled chunk to read-only (the PTE walk) and back;
 *   mremap    moving the filled chunk to a new place (MREMAP_MAYMOVE|MREMAP_FIXED);
 *   brk       raising the break by the chunk (sbrk), then lowering it (timed apart).
 *
 * usage: writer_calls [PAGES=128]
 * build: cc -O2 -o writer_calls writer_calls.c
 * Written for vmlab (MIT licence, like the rest of the project).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

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

static double median(double *v)
{
	qsort(v, N, sizeof(double), cmp);
	return v[N / 2];
}

static void fill(char *p, size_t bytes)
{
	for (size_t o = 0; o < bytes; o += 4096)
		p[o] = 1;
}

int main(int argc, char **argv)
{
	int pages = argc > 1 ? atoi(argv[1]) : 128;
	size_t bytes = (size_t)pages * 4096;
	static double mm[N], mu[N], mp[N], mr[N], bg[N], bs[N];

	if (pages <= 0) {
		fprintf(stderr, "usage: %s [PAGES > 0]\n", argv[0]);
		return 2;
	}
	/* a place to move chunks to: reserved, twice the chunk */
	char *dst = mmap(NULL, 2 * bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (dst == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	for (int i = 0; i < N; i++) {
		double t0 = now_ns();
		char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		double t1 = now_ns();
		if (p == MAP_FAILED) {
			perror("mmap");
			return 1;
		}
		fill(p, bytes);
		double t2 = now_ns();
		if (mprotect(p, bytes, PROT_READ)) {
			perror("mprotect");
			return 1;
		}
		double t3 = now_ns();
		mprotect(p, bytes, PROT_READ | PROT_WRITE);
		double t4 = now_ns();
		char *q = mremap(p, bytes, bytes, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
		double t5 = now_ns();
		if (q == MAP_FAILED) {
			perror("mremap");
			return 1;
		}
		double t6 = now_ns();
		munmap(q, bytes);
		double t7 = now_ns();
		/* restore the reservation the move replaced */
		mmap(dst, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		double t8 = now_ns();
		char *h = sbrk(bytes);
		double t9 = now_ns();
		if (h == (void *)-1) {
			perror("sbrk");
			return 1;
		}
		fill(h, bytes);
		double t10 = now_ns();
		sbrk(-(long)bytes);
		double t11 = now_ns();
		mm[i] = t1 - t0;
		mp[i] = t3 - t2;
		mr[i] = t5 - t4;
		mu[i] = t7 - t6;
		bg[i] = t9 - t8;
		bs[i] = t11 - t10;
		(void)t4;
	}
	printf("%d pages, medians of %d: mmap %.0f ns, munmap (filled) %.0f ns, mprotect %.0f ns, "
	       "mremap (move) %.0f ns, brk up %.0f ns, brk down (filled) %.0f ns\n",
	       pages, N, median(mm), median(mu), median(mp), median(mr), median(bg), median(bs));
	return 0;
}
