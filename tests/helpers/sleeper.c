/* Sleeps until killed, whatever its argv; never reaps its children, so a
 * child that exits stays a zombie. Used by the live tests to run processes
 * with any argv the test wants. */
#include <unistd.h>

int main(void) {
    for (;;)
        pause();
}
