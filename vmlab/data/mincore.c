/* mincore: print which pages of each file are in the page cache.
 *
 * usage: mincore FILE...
 * For each FILE one line "PATH<TAB>A-B,C-D,..." (resident page runs [A, B), page numbers),
 * or "PATH<TAB>!" when it cannot be opened or mapped.  Maps each file read-only and shared
 * and asks mincore(2): no page is read.  Built static when the C library allows, so that
 * it touches no shared library: run where a measured program would start (under perf
 * stat), it sees the page cache that program starts from.
 * Written for vmlab (MIT licence, like the rest of the project).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    long ps = sysconf(_SC_PAGESIZE);
    for (int i = 1; i < argc; i++) {
        int fd = open(argv[i], O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0) {
            printf("%s\t!\n", argv[i]);
            if (fd >= 0)
                close(fd);
            continue;
        }
        size_t n = (st.st_size + ps - 1) / ps;
        printf("%s\t", argv[i]);
        if (n) {
            void *p = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
            unsigned char *vec = malloc(n);
            if (p == MAP_FAILED || vec == NULL || mincore(p, st.st_size, vec) != 0) {
                printf("!\n");
                close(fd);
                continue;
            }
            int first = 1;
            for (size_t a = 0; a < n;) {
                if (!(vec[a] & 1)) {
                    a++;
                    continue;
                }
                size_t b = a;
                while (b < n && (vec[b] & 1))
                    b++;
                printf("%s%zu-%zu", first ? "" : ",", a, b);
                first = 0;
                a = b;
            }
            munmap(p, st.st_size);
            free(vec);
        }
        printf("\n");
        close(fd);
    }
    return 0;
}
