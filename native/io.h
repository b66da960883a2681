// Small I/O helpers shared by pipewright's C programs and its Node addon: a growing buffer, and
// reads and writes that finish what they start (retrying on EINTR).
#ifndef PIPEWRIGHT_IO_H
#define PIPEWRIGHT_IO_H
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct buf {
  char *data;
  size_t len, cap;
};

// Appends n bytes, keeping a NUL after them (not counted in len); -1 when out of memory.
static inline int buf_append(struct buf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = (b->len + n + 1) * 2;
    char *d = realloc(b->data, cap);
    if (!d) return -1;
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

// Reads exactly n bytes: 0, or -1 at end of stream or on an error.
static inline int read_exactly(int fd, void *to, size_t n) {
  char *p = to;
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

// Puts all n bytes out with `put` (write, or send_nosignal): 0, or -1 on an error.
static inline int put_all(ssize_t (*put)(int, const void *, size_t), int fd, const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = put(fd, s, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    s += w;
    n -= (size_t)w;
  }
  return 0;
}

// send(2) where a peer gone is an error (EPIPE), not SIGPIPE.
static inline ssize_t send_nosignal(int sock, const void *s, size_t n) {
  return send(sock, s, n, MSG_NOSIGNAL);
}

// All n bytes to a file or pipe.
static inline int write_all(int fd, const char *s, size_t n) {
  return put_all(write, fd, s, n);
}

// All n bytes on a socket.
static inline int send_all(int sock, const char *s, size_t n) {
  return put_all(send_nosignal, sock, s, n);
}

// Milliseconds on the monotonic clock: deadlines that a change of the wall clock does not move.
static inline int64_t now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

// Waits until fd is ready for `events` (POLLIN, POLLOUT): 1, or 0 once the deadline (now_ms) has
// passed or on an error. One deadline for a whole exchange, not a limit per read or write.
static inline int ready_by(int fd, short events, int64_t deadline) {
  for (;;) {
    int64_t left = deadline - now_ms();
    if (left <= 0) return 0;
    struct pollfd p = {.fd = fd, .events = events};
    int n = poll(&p, 1, (int)left);
    if (n > 0) return 1;
    if (n < 0 && errno != EINTR) return 0;
  }
}

#endif
