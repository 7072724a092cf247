/* Opens and closes DIR/f0 .. DIR/f(FILES-1) in turn, COUNT opens in all,
 * creating first the files that do not exist: the workload of the files
 * tests and bench. (`opener DIR 0 N` only creates the files: run it before
 * a watch, so that the watched run opens each file just once.) With a
 * fourth argument `hold`, nothing is closed until the process exits, two
 * seconds after its last open: long enough for a watcher to read every
 * open before the closes come (a close still queued behind its open is
 * merged into it by fanotify, and then looks like a short open). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 4 && !(argc == 5 && strcmp(argv[4], "hold") == 0)) {
        fprintf(stderr, "usage: opener DIR COUNT FILES [hold]\n");
        return 2;
    }
    long count = atol(argv[2]), files = atol(argv[3]);
    int hold = argc == 5;
    char path[4096];
    for (long i = 0; i < files; i++) {
        snprintf(path, sizeof path, "%s/f%ld", argv[1], i);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd < 0 && errno != EEXIST) { perror(path); return 1; }
        if (fd >= 0) close(fd);
    }
    struct timespec t0, t1;
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < count; i++) {
        snprintf(path, sizeof path, "%s/f%ld", argv[1], i % files);
        int fd = open(path, O_RDONLY);
        if (fd < 0) { perror(path); return 1; }
        if (!hold)
            close(fd);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    getrusage(RUSAGE_SELF, &r1);
    /* CPU time too: it tells time spent in our own system calls from time
     * spent waiting for a CPU. */
    double cpu = (r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) + (r1.ru_stime.tv_sec - r0.ru_stime.tv_sec)
                 + ((r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) + (r1.ru_stime.tv_usec - r0.ru_stime.tv_usec)) / 1e6;
    if (count > 0)
        fprintf(stderr, "opener: %ld opens in %.6f s (cpu %.6f s)\n", count,
                (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9, cpu);
    if (hold)
        sleep(2);
    return 0;
}
