/* The cheapest fanotify reader measured here: the group and mark `psdiff
 * files --path DIR` sets up (notification class, FAN_REPORT_DFID_NAME, a
 * mount mark for opens and closes), read every millisecond and thrown
 * away. What it costs the watched processes is what fanotify itself costs
 * on this machine, the floor under any reader; bench/files.py runs it as a
 * reference. Prints "ready" once marked; SIGTERM ends it.
 *
 *     fanotify_floor DIR
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/fanotify.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: fanotify_floor DIR\n");
        return 2;
    }
    int group = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK | FAN_REPORT_DFID_NAME,
                              O_RDONLY | O_LARGEFILE);
    if (group < 0) { perror("fanotify_init"); return 1; }
    if (fanotify_mark(group, FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_OPEN | FAN_CLOSE, AT_FDCWD, argv[1]) < 0) {
        perror(argv[1]);
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    static char buffer[256 * 1024];
    for (;;) {
        usleep(1000);
        while (read(group, buffer, sizeof buffer) > 0) {
        }
    }
}
