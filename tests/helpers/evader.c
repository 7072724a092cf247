/* What a local user runs to hide a miner from psdiff, for tests/it/evasions.rs
 * and the live Debian suite. Each prints "ready PID" once it is in place,
 * then runs until killed.
 *
 *   evader zombie-leader   the main thread exits (pthread_exit) while a
 *                          worker thread runs on: /proc says state Z
 *   evader pause           just runs (the miner a disguise hides)
 *
 * Built with -DPRELOAD -shared -fPIC it is a library whose constructor is
 * the miner: any program it is preloaded into never reaches its main. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifdef PRELOAD
__attribute__((constructor)) static void miner(void) {
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    for (;;)
        pause();
}
#else
static void *worker(void *arg) {
    (void)arg;
    for (;;)
        pause();
    return NULL;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "zombie-leader") == 0) {
        pthread_t t;
        pthread_create(&t, NULL, worker, NULL);
        printf("ready %d\n", (int)getpid());
        fflush(stdout);
        pthread_exit(NULL);
    }
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    for (;;)
        pause();
}
#endif
