/* cgexec: move this process into a cgroup, then exec a program in it.
 *
 * usage: cgexec CGROUP_PROCS_FILE PROGRAM ARGS...
 * Writes "0" (this process) to CGROUP_PROCS_FILE (cgroup v1 or v2 "cgroup.procs"), then
 * execvp()s PROGRAM, so that only PROGRAM and its children are charged to the cgroup
 * (perf stat, which runs cgexec, stays outside).  Built static when the C library allows,
 * so that its own page faults before exec are as few as possible.
 * Written for vmlab (MIT licence, like the rest of the project).
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s CGROUP_PROCS_FILE PROGRAM ARGS...\n", argv[0]);
        return 125;
    }
    int fd = open(argv[1], O_WRONLY);
    if (fd < 0 || write(fd, "0\n", 2) != 2) {
        perror(argv[1]);
        return 125;
    }
    close(fd);
    execvp(argv[2], argv + 2);
    perror(argv[2]);
    return 127;
}
