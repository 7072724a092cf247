/* Processes that try to break psdiff, for tests/hostile.rs.
 *
 *   hostile chain N      N nested processes, each the parent of the next
 *   hostile retitle T    overwrites its own argv with T after start
 *   hostile fork-storm   forks children that exit at once, forever
 *
 * All sleep until killed; none reaps its children except fork-storm. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "chain") == 0) {
        /* Each child execs itself afresh: a chain of plain forks grows the
         * kernel's shared anon_vma chain, and every fork gets slower. */
        long n = atol(argv[2]);
        if (n > 1 && fork() == 0) {
            char next[32];
            snprintf(next, sizeof next, "%ld", n - 1);
            execl("/proc/self/exe", argv[0], "chain", next, (char *)0);
            _exit(127);
        }
    } else if (argc >= 3 && strcmp(argv[1], "retitle") == 0) {
        char *end = argv[argc - 1] + strlen(argv[argc - 1]);
        size_t room = (size_t)(end - argv[0]);
        char title[4096];
        strncpy(title, argv[2], sizeof title - 1);
        title[sizeof title - 1] = 0;
        memset(argv[0], 0, room);
        strncpy(argv[0], title, room);
    } else if (argc >= 2 && strcmp(argv[1], "fork-storm") == 0) {
        signal(SIGCHLD, SIG_IGN); /* children are reaped by the kernel */
        for (;;) {
            if (fork() == 0)
                _exit(0);
        }
    }
    for (;;)
        pause();
}
