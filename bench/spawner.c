/* The workloads of bench/watch.py.
 *   spawner N [RATE]  N times fork, exec /bin/true, wait (at most RATE a
 *                     second); then "spawner: N processes in S s (cpu C s)"
 *                     on stderr, C being the children's and its own CPU.
 *   spawner hold N    forks N children that sleep until killed, says
 *                     "spawner: holding N" and sleeps; SIGTERM ends all. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double seconds(struct timeval t) { return t.tv_sec + t.tv_usec / 1e6; }

static void end_all(int sig) {
    (void)sig;
    signal(SIGTERM, SIG_IGN);
    kill(0, SIGTERM);
    _exit(0);
}

static void hold(long n) {
    setpgid(0, 0);
    signal(SIGTERM, end_all);
    for (long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) { perror("fork"); end_all(0); }
        if (pid == 0) {
            signal(SIGTERM, SIG_DFL);
            for (;;) pause();
        }
    }
    fprintf(stderr, "spawner: holding %ld\n", n);
    for (;;) pause();
}

int main(int argc, char **argv) {
    if (argc > 2 && strcmp(argv[1], "hold") == 0)
        hold(atol(argv[2]));
    long n = argc > 1 ? atol(argv[1]) : 20000;
    double rate = argc > 2 ? atof(argv[2]) : 0;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) {
        if (rate > 0) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            double due = i / rate - ((now.tv_sec - a.tv_sec) + (now.tv_nsec - a.tv_nsec) / 1e9);
            if (due > 0) {
                struct timespec pause_for = {(time_t)due, (long)((due - (time_t)due) * 1e9)};
                nanosleep(&pause_for, NULL);
            }
        }
        pid_t pid = fork();
        if (pid < 0) { perror("fork"); return 1; }
        if (pid == 0) {
            execl("/bin/true", "true", (char *)NULL);
            _exit(127);
        }
        int status;
        if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
            fprintf(stderr, "spawner: child %d failed\n", pid);
            return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    struct rusage self, children;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &children);
    double cpu = seconds(self.ru_utime) + seconds(self.ru_stime) +
                 seconds(children.ru_utime) + seconds(children.ru_stime);
    fprintf(stderr, "spawner: %ld processes in %.3f s (cpu %.3f s)\n", n,
            (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9, cpu);
    return 0;
}
