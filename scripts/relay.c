/* A minimal poll(2) relay between two serial ports or ptys: the floor that
 * scripts/bench compares bridges' wake-ups and CPU against. One thread, one loop,
 * raw mode, no framing: what a bridge cannot do with less.
 *
 *     cc -O2 -o relay scripts/relay.c && ./relay /dev/pts/3 /dev/pts/4
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define BUF 65536

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static int open_raw(const char *path) {
    int fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK);
    struct termios t;
    if (fd < 0 || tcgetattr(fd, &t) < 0) { perror(path); return -1; }
    cfmakeraw(&t);
    tcsetattr(fd, TCSANOW, &t);
    return fd;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: relay A B\n"); return 2; }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int fd[2] = { open_raw(argv[1]), open_raw(argv[2]) };
    if (fd[0] < 0 || fd[1] < 0) return 3;
    static char buf[2][BUF];          /* bytes read from side i, waiting for the other */
    size_t have[2] = { 0, 0 }, at[2] = { 0, 0 };
    while (!stop) {
        struct pollfd p[2];
        for (int i = 0; i < 2; i++) {
            p[i].fd = fd[i];
            /* read side i while its buffer is empty; write to it while the other's is not */
            p[i].events = (have[i] == at[i] ? POLLIN : 0) | (have[1 - i] > at[1 - i] ? POLLOUT : 0);
        }
        if (poll(p, 2, -1) < 0) { if (errno == EINTR) continue; return 1; }
        for (int i = 0; i < 2; i++) {
            if ((p[i].revents & POLLIN) && have[i] == at[i]) {
                ssize_t n = read(fd[i], buf[i], BUF);
                if (n > 0) { have[i] = (size_t)n; at[i] = 0; }
                else if (n == 0 || (errno != EAGAIN && errno != EINTR)) return 1;
            }
            int j = 1 - i;  /* write what side j read into side i */
            if ((p[i].revents & POLLOUT) && have[j] > at[j]) {
                ssize_t n = write(fd[i], buf[j] + at[j], have[j] - at[j]);
                if (n > 0) at[j] += (size_t)n;
                else if (n < 0 && errno != EAGAIN && errno != EINTR) return 1;
            }
            if ((p[i].revents & (POLLHUP | POLLERR)) && !(p[i].revents & POLLIN)) return 1;
        }
    }
    return 0;
}
