/*
 * syscalls.node: system calls Node does not offer.
 *
 *   setns(fd, nstype) -> undefined   enter a namespace on the calling (main) thread, so a netlink
 *                                    socket can be opened inside a guest's network namespace. A
 *                                    socket belongs to the namespace of the thread that created it;
 *                                    pipewright enters, creates the socket and returns at once.
 *                                    Switching the network namespace of one thread is allowed in a
 *                                    multithreaded process (unlike mount).
 *   tryLock(fd) -> boolean           flock(fd, LOCK_EX | LOCK_NB): true when taken, false when
 *                                    another holder has it. The kernel releases the lock when the
 *                                    holder's fd is closed or the holder dies, even by kill -9.
 *
 *   nlOpen([waitMs]) -> fd           a NETLINK_ROUTE socket (close-on-exec) in the namespace of the
 *                                    calling thread, with extended acks on (the kernel's own words
 *                                    for an error) and acks capped (an error does not echo the request).
 *                                    waitMs (default ANSWER_WAIT_S) bounds how long the kernel may
 *                                    be silent in a request's answer (see nlRequest).
 *   nlRequest(fd, message) -> Promise<Buffer>
 *                                    sends one request (one nlmsghdr, NLM_F_ACK set by the caller)
 *                                    and resolves with every message the kernel answered with, up to
 *                                    and including its ack, error or NLMSG_DONE. Runs on libuv's
 *                                    thread pool: a kernel that takes its time (deleting a veth waits
 *                                    for an RCU grace period) never blocks the event loop. One request
 *                                    at a time per socket (the caller queues them).
 *                                    Only the kernel's datagrams (sender portid 0) are read: in a
 *                                    guest's namespace, the guest's root can send to this socket too.
 *                                    Each datagram is walked within its length (nl-walk.h); an answer
 *                                    over MAX_ANSWER is an error, and so is a silence of the kernel
 *                                    longer than the socket's wait (after the send returned, or
 *                                    after its last datagram): datagrams of others that arrive
 *                                    meanwhile do not count.
 *   nlRequestSync(fd, message) -> Buffer
 *                                    the same on the calling thread, for a process with nothing else
 *                                    to run meanwhile (a one-shot command); throws the same errors.
 *
 *   unixListen(path) -> fd           a listening Unix stream socket at `path`, mode 0600, close-on-exec,
 *                                    that libuv never watches: the daemon hands it to its warm CLI
 *                                    workers (src/daemon/cli-workers.ts), which accept on it themselves.
 *                                    It replaces only a socket nobody answers on: EADDRINUSE when one
 *                                    answers, ENOTSOCK when something else is at `path`.
 *   takeCall(fd) -> {conn, pid, pidfd, payload}
 *                                    blocks (deliberately, on the main thread: a warm worker has
 *                                    nothing else to do) until a caller with this process's uid
 *                                    connects and sends its call: a 4-byte length, then that many
 *                                    bytes, no descriptors. Callers of another uid, or whose whole call
 *                                    has not come 2 s after the accept, are dropped and the wait
 *                                    goes on.
 *                                    The result's pidfd (see peerOf) is the caller's.
 *   takeGo(conn) -> [fd, fd, fd]     waits for the caller's go ('g', sent once the worker answered),
 *                                    which brings its stdin, stdout and stderr (SCM_RIGHTS); throws
 *                                    when none comes (the caller gave up waiting: it runs the command).
 *   peerOf(fd) -> {pid, uid, pidfd}  who connected a Unix socket: SO_PEERCRED's pid and uid, and a pidfd of
 *                                    that process (SO_PEERPIDFD; on a kernel before 6.5, pidfd_open of the
 *                                    pid, kept only when that process holds the socket's other end).
 *                                    The caller closes the pidfd.
 *   exited(pidfd) -> boolean         whether the process a pidfd names has ended. Read after the caller's
 *                                    /proc files: a process still running then is the one that was read
 *                                    (its pid cannot have been given to another).
 *   dup2(from, to) -> undefined      dup2(2): a worker puts its caller's descriptors on 0, 1, 2.
 *   dieWithParent(on) -> undefined   prctl(PR_SET_PDEATHSIG): SIGKILL when the parent dies (on), or not.
 *   nlWatch, nlUnwatch               kernel change events (multicast netlink groups), in nl-events.c.
 *   announce                         a gratuitous ARP sent from the host, in announce.c.
 *   spawnTool, signalTool            a host tool started without copying Node's memory, and
 *                                    signalled through its pidfd, in spawn-tool.c.
 *
 * They throw Error("<call>: <reason>") on any other failure (nlRequest rejects). Every N-API
 * status is checked. Messages are encoded and parsed in TypeScript (src/net/rtnetlink).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <node_api.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <sys/un.h>
#include <signal.h>
#include <dirent.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/netlink.h>
#include "cpu-key.h"
#include "io.h"
#include "nl-walk.h"
#include "nl-events.h"
#include "announce.h"
#include "spawn-tool.h"

/* Throws Error("<call>: <reason>") with err.code the errno's name (EINVAL, ...), as Node's own errors have. */
static void throw_errno(napi_env env, const char *call) {
  char msg[128];
  const char *name = strerrorname_np(errno);
  snprintf(msg, sizeof msg, "%s: %s", call, strerror(errno));
  napi_throw_error(env, name, msg);
}

/* Reads `want` int32 arguments; on a mismatch throws a TypeError naming the usage and returns 0. */
static int int_args(napi_env env, napi_callback_info info, int32_t *out, size_t want, const char *usage) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) goto bad;
  for (size_t i = 0; i < want; i++) {
    if (napi_get_value_int32(env, argv[i], &out[i]) != napi_ok) goto bad;
  }
  return 1;
bad:
  napi_throw_type_error(env, NULL, usage);
  return 0;
}

static napi_value js_setns(napi_env env, napi_callback_info info) {
  int32_t a[2];
  if (!int_args(env, info, a, 2, "setns(fd, nstype) takes two integers")) return NULL;
  if (setns(a[0], a[1]) != 0) throw_errno(env, "setns");
  return NULL;
}

static napi_value js_try_lock(napi_env env, napi_callback_info info) {
  int32_t fd;
  napi_value result;
  if (!int_args(env, info, &fd, 1, "tryLock(fd) takes an integer")) return NULL;
  int taken = flock(fd, LOCK_EX | LOCK_NB) == 0;
  if (!taken && errno != EWOULDBLOCK) {
    throw_errno(env, "flock");
    return NULL;
  }
  if (napi_get_boolean(env, taken, &result) != napi_ok) return NULL;
  return result;
}

enum { RECV_BUF = 65536, ANSWER_WAIT_S = 10 };
/* An answer over this is refused (read to its end, dropped): a guest that grows its namespace's
   tables without bound does not grow pipewright with them. A full internet routing table (about
   a million routes) dumps in about 100 MiB. */
#define MAX_ANSWER ((size_t)256 << 20)
/* The longest wait nlOpen takes (poll's int milliseconds hold it). */
#define MAX_WAIT_MS ((int64_t)86400000)

/* nlOpen's optional wait in milliseconds: ANSWER_WAIT_S when absent; 0 with a TypeError thrown when not a positive integer. */
static int64_t answer_wait_ms(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg;
  napi_valuetype type = napi_undefined;
  int64_t ms = 0;
  if (napi_get_cb_info(env, info, &argc, &arg, NULL, NULL) != napi_ok) return 0;
  if (argc == 0 || (napi_typeof(env, arg, &type) == napi_ok && type == napi_undefined)) return ANSWER_WAIT_S * 1000;
  if (napi_get_value_int64(env, arg, &ms) != napi_ok || ms <= 0 || ms > MAX_WAIT_MS) {
    napi_throw_type_error(env, NULL, "nlOpen([waitMs]) takes a number of milliseconds, 1 to a day");
    return 0;
  }
  return ms;
}

static napi_value js_nl_open(napi_env env, napi_callback_info info) {
  napi_value result;
  int one = 1;
  int64_t wait_ms = answer_wait_ms(env, info);
  if (wait_ms == 0) return NULL;
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) {
    throw_errno(env, "socket(AF_NETLINK)");
    return NULL;
  }
  struct sockaddr_nl self = {.nl_family = AF_NETLINK};
  if (bind(fd, (struct sockaddr *)&self, sizeof self) != 0) {
    throw_errno(env, "bind(AF_NETLINK)");
    close(fd);
    return NULL;
  }
  /* Both are comforts (older kernels lack them): an error still arrives without them. */
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  /* The kernel answers a request before sendto returns (a dump, as it is read), so a wait is a lost
     answer: a flood from a guest's root filled the queue and the kernel dropped its ack. The socket
     keeps its wait here; each request reads it back (wait_of). */
  struct timeval wait = {.tv_sec = wait_ms / 1000, .tv_usec = (wait_ms % 1000) * 1000};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait) != 0) {
    throw_errno(env, "setsockopt(SO_RCVTIMEO)");
    close(fd);
    return NULL;
  }
  if (napi_create_int32(env, fd, &result) != napi_ok) {
    close(fd);
    return NULL;
  }
  return result;
}

/* One request in flight: its bytes, the answer gathered on a pool thread, the errno if it failed. */
typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref message_ref;
  int fd;
  const char *message;
  size_t message_len;
  char *answer;
  size_t answer_len;
  int error;
  const char *failed_call;
  int64_t wait_ms;     /* the socket's wait: how long the kernel may be silent */
  int64_t deadline_ms; /* CLOCK_MONOTONIC: the kernel's next datagram is in by then, or the request fails */
} nl_job;

/* Ends the job with an error; what it gathered so far is dropped. */
static void fail_job(nl_job *job, int error, const char *call) {
  job->error = error;
  job->failed_call = call;
  free(job->answer);
  job->answer = NULL;
  job->answer_len = 0;
}

/* Appends the whole messages of one datagram, each padded so the answer stays aligned; returns 1
   when the answer to `seq` ended in it. After an error the rest of the answer is still read (and
   dropped), so the socket's next request starts on a clean queue. */
static int take_datagram(nl_job *job, const char *buf, size_t len, uint32_t seq) {
  nl_walk_result w = nl_walk(buf, len, seq);
  size_t padded = NLMSG_ALIGN(w.whole);
  if (job->error || padded == 0) return w.last;
  if (job->answer_len + padded > MAX_ANSWER) {
    fail_job(job, EMSGSIZE, "netlink answer over 256 MiB");
    return w.last;
  }
  char *grown = realloc(job->answer, job->answer_len + padded);
  if (!grown) {
    fail_job(job, ENOMEM, "realloc");
    return w.last;
  }
  job->answer = grown;
  memcpy(job->answer + job->answer_len, buf, w.whole);
  memset(job->answer + job->answer_len + w.whole, 0, padded - w.whole);
  job->answer_len += padded;
  return w.last;
}

/* The socket's wait (nlOpen), read back. */
static int64_t wait_of(int fd) {
  struct timeval wait = {.tv_sec = ANSWER_WAIT_S};
  socklen_t len = sizeof wait;
  getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, &len);
  return (int64_t)wait.tv_sec * 1000 + wait.tv_usec / 1000;
}

/* Reads the next datagram the kernel sent (portid 0); 1 while the answer goes on, 0 at its end or
   on an error (set in job). Another socket's datagram (a process with CAP_NET_ADMIN over the
   namespace can send one) is skipped unread, whatever its size, and does not move the deadline:
   only the kernel's datagrams do (a long dump goes on as long as the kernel goes on writing it). */
static int receive_from_kernel(nl_job *job, char *buf, uint32_t seq) {
  for (;;) {
    struct sockaddr_nl from;
    struct iovec iov = {.iov_base = buf, .iov_len = RECV_BUF};
    struct msghdr msg = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1};
    int in_time = ready_by(job->fd, POLLIN, job->deadline_ms);
    /* Read even when the time is up: an answer queued meanwhile is taken, not dropped. */
    ssize_t n = recvmsg(job->fd, &msg, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      if (in_time) continue;
      fail_job(job, ETIMEDOUT, "netlink answer");
      return 0;
    }
    if (n < 0) {
      fail_job(job, errno, "recvmsg(netlink)");
      return 0;
    }
    if (msg.msg_namelen < sizeof from || from.nl_family != AF_NETLINK || from.nl_pid != 0) continue;
    if (msg.msg_flags & MSG_TRUNC) {
      fail_job(job, EMSGSIZE, "recvmsg(netlink)");
      return 0;
    }
    job->deadline_ms = now_ms() + job->wait_ms;
    return !take_datagram(job, buf, (size_t)n, seq);
  }
}

static void nl_execute(napi_env env, void *data) {
  (void)env;
  nl_job *job = data;
  uint32_t seq = ((const struct nlmsghdr *)job->message)->nlmsg_seq;
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  if (sendto(job->fd, job->message, job->message_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
    fail_job(job, errno, "sendto(netlink)");
    return;
  }
  /* Counted from the send's return: the kernel makes a change within sendto, however long that takes. */
  job->wait_ms = wait_of(job->fd);
  job->deadline_ms = now_ms() + job->wait_ms;
  char *buf = malloc(RECV_BUF);
  if (!buf) {
    fail_job(job, ENOMEM, "malloc");
    return;
  }
  while (receive_from_kernel(job, buf, seq)) continue;
  free(buf);
}

/* A failed job's error: the call that failed and the errno's text. */
static void job_error(const nl_job *job, char *msg, size_t size) {
  snprintf(msg, size, "%s: %s", job->failed_call ? job->failed_call : "netlink", strerror(job->error ? job->error : EIO));
}

static void nl_complete(napi_env env, napi_status status, void *data) {
  nl_job *job = data;
  napi_value value;
  if (status == napi_ok && job->error == 0 && napi_create_buffer_copy(env, job->answer_len, job->answer, NULL, &value) == napi_ok) {
    napi_resolve_deferred(env, job->deferred, value);
  } else {
    char msg[128];
    napi_value text;
    job_error(job, msg, sizeof msg);
    if (napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text) == napi_ok && napi_create_error(env, NULL, text, &value) == napi_ok) {
      napi_reject_deferred(env, job->deferred, value);
    }
  }
  napi_delete_reference(env, job->message_ref);
  napi_delete_async_work(env, job->work);
  free(job->answer);
  free(job);
}

/* A request's arguments into `job`: an fd and a Buffer holding one netlink message (returned in
   `buffer`). False, with a TypeError naming `call` thrown, when they are not that. */
static bool request_of(napi_env env, napi_callback_info info, const char *call, nl_job *job, napi_value *buffer) {
  size_t argc = 2;
  napi_value argv[2];
  void *bytes = NULL;
  bool is_buffer = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 || napi_get_value_int32(env, argv[0], &job->fd) != napi_ok ||
      napi_is_buffer(env, argv[1], &is_buffer) != napi_ok || !is_buffer || napi_get_buffer_info(env, argv[1], &bytes, &job->message_len) != napi_ok ||
      job->message_len < sizeof(struct nlmsghdr)) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s(fd, message) takes an integer and a Buffer holding one netlink message", call);
    napi_throw_type_error(env, NULL, msg);
    return false;
  }
  job->message = bytes;
  *buffer = argv[1];
  return true;
}

static napi_value js_nl_request(napi_env env, napi_callback_info info) {
  napi_value buffer, promise, name, text, error;
  nl_job *job = calloc(1, sizeof *job);
  if (!job) {
    napi_throw_error(env, NULL, "nlRequest: out of memory");
    return NULL;
  }
  if (!request_of(env, info, "nlRequest", job, &buffer)) {
    free(job);
    return NULL;
  }
  if (napi_create_promise(env, &job->deferred, &promise) != napi_ok) {
    free(job);
    napi_throw_error(env, NULL, "nlRequest: could not make a promise");
    return NULL;
  }
  /* The Buffer stays referenced (so its bytes stay put) until the request completes. */
  if (napi_create_reference(env, buffer, 1, &job->message_ref) != napi_ok) goto reject;
  if (napi_create_string_utf8(env, "pipewright:netlink", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, nl_execute, nl_complete, job, &job->work) != napi_ok)
    goto unref;
  if (napi_queue_async_work(env, job->work) == napi_ok) return promise;
  napi_delete_async_work(env, job->work);
unref:
  napi_delete_reference(env, job->message_ref);
reject:
  /* The promise is settled either way: a caller awaiting it gets the error. */
  if (napi_create_string_utf8(env, "nlRequest: could not queue the request", NAPI_AUTO_LENGTH, &text) == napi_ok &&
      napi_create_error(env, NULL, text, &error) == napi_ok)
    napi_reject_deferred(env, job->deferred, error);
  free(job);
  return promise;
}

/* nlRequest on the calling thread (see the list above): no thread pool to start, no hops. */
static napi_value js_nl_request_sync(napi_env env, napi_callback_info info) {
  napi_value buffer, value = NULL;
  nl_job job = {0};
  if (!request_of(env, info, "nlRequestSync", &job, &buffer)) return NULL;
  nl_execute(env, &job);
  if (job.error) {
    char msg[128];
    job_error(&job, msg, sizeof msg);
    napi_throw_error(env, NULL, msg);
  } else if (napi_create_buffer_copy(env, job.answer_len, job.answer, NULL, &value) != napi_ok) {
    napi_throw_error(env, NULL, "nlRequestSync: out of memory");
    value = NULL;
  }
  free(job.answer);
  return value;
}

/*
 * Makes way for a socket at addr: nothing there, or a socket nobody answers on (a daemon's that
 * died) unlinked. -1 with errno EADDRINUSE when one answers (a live daemon's: not taken from it),
 * ENOTSOCK when something else is there (never deleted: it may be anything an operator named).
 */
static int clear_socket_path(const struct sockaddr_un *addr) {
  struct stat st;
  if (lstat(addr->sun_path, &st) != 0) return errno == ENOENT ? 0 : -1;
  if (!S_ISSOCK(st.st_mode)) {
    errno = ENOTSOCK;
    return -1;
  }
  int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (probe < 0) return -1;
  /* EAGAIN: a full backlog, so a listener. */
  int live = connect(probe, (const struct sockaddr *)addr, sizeof *addr) == 0 || errno == EAGAIN;
  close(probe);
  if (live) {
    errno = EADDRINUSE;
    return -1;
  }
  return unlink(addr->sun_path) == 0 || errno == ENOENT ? 0 : -1;
}

static napi_value js_unix_listen(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  size_t len = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_string_utf8(env, argv[0], addr.sun_path, sizeof addr.sun_path, &len) != napi_ok || len == 0 ||
      len >= sizeof addr.sun_path - 1) {
    napi_throw_type_error(env, NULL, "unixListen(path) takes a socket path shorter than 107 bytes");
    return NULL;
  }
  if (clear_socket_path(&addr) != 0) {
    throw_errno(env, addr.sun_path);
    return NULL;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw_errno(env, "socket(AF_UNIX)");
    return NULL;
  }
  /* Made 0600 before anyone can connect: bind under a umask that leaves only the owner's bits. */
  mode_t old = umask(0177);
  int bound = bind(fd, (struct sockaddr *)&addr, sizeof addr);
  umask(old);
  if (bound != 0 || listen(fd, 64) != 0) {
    throw_errno(env, bound != 0 ? "bind" : "listen");
    close(fd);
    return NULL;
  }
  if (napi_create_int32(env, fd, &result) != napi_ok) {
    close(fd);
    return NULL;
  }
  return result;
}

enum { MAX_CALL = 1 << 20, MAX_FDS = 3, CALL_WAIT_MS = 2000 };

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77 /* Linux 6.5; Debian 12's headers predate it */
#endif

/*
 * The inode of the socket at the other end of `conn` (sock_diag, UNIX_DIAG_PEER), asked of the
 * kernel itself (an answer from port 0); 0 when unknown: its holders all closed it, unix_diag is
 * missing, or the connection comes from another network namespace.
 */
static uint32_t peer_inode(int conn) {
  struct stat st;
  if (fstat(conn, &st) != 0) return 0;
  int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0) return 0;
  struct {
    struct nlmsghdr h;
    struct unix_diag_req r;
  } req = {.h = {.nlmsg_len = sizeof req, .nlmsg_type = SOCK_DIAG_BY_FAMILY, .nlmsg_flags = NLM_F_REQUEST},
           .r = {.sdiag_family = AF_UNIX, .udiag_states = ~0u, .udiag_ino = (uint32_t)st.st_ino, .udiag_show = UDIAG_SHOW_PEER,
                 .udiag_cookie = {~0u, ~0u}}};
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK}, from;
  socklen_t from_len = sizeof from;
  union {
    struct nlmsghdr h;
    char bytes[1024];
  } answer;
  uint32_t peer = 0;
  ssize_t n = -1;
  if (sendto(nl, &req, sizeof req, 0, (struct sockaddr *)&kernel, sizeof kernel) == (ssize_t)sizeof req)
    n = recvfrom(nl, &answer, sizeof answer, 0, (struct sockaddr *)&from, &from_len);
  close(nl);
  size_t head = NLMSG_LENGTH(sizeof(struct unix_diag_msg));
  if (n < (ssize_t)head || from.nl_pid != 0 || answer.h.nlmsg_type != SOCK_DIAG_BY_FAMILY || answer.h.nlmsg_len > (size_t)n ||
      answer.h.nlmsg_len < head)
    return 0;
  const struct unix_diag_msg *msg = NLMSG_DATA(&answer.h);
  if (msg->udiag_ino != (uint32_t)st.st_ino) return 0;
  /* The attributes, each checked to lie within the message before it is read. */
  for (size_t at = NLMSG_ALIGN(head); at + sizeof(struct rtattr) <= answer.h.nlmsg_len;) {
    const struct rtattr *a = (const struct rtattr *)(answer.bytes + at);
    if (a->rta_len < sizeof *a || at + a->rta_len > answer.h.nlmsg_len) break;
    if (a->rta_type == UNIX_DIAG_PEER && a->rta_len >= RTA_LENGTH(sizeof peer)) memcpy(&peer, RTA_DATA(a), sizeof peer);
    at += RTA_ALIGN(a->rta_len);
  }
  return peer;
}

/* Whether process `pid` holds the socket of inode `ino`. */
static int holds_socket(pid_t pid, uint32_t ino) {
  char dir[32], want[32], link[64];
  snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
  snprintf(want, sizeof want, "socket:[%" PRIu32 "]", ino);
  DIR *d = opendir(dir);
  if (!d) return 0;
  int found = 0;
  for (struct dirent *e; !found && (e = readdir(d));) {
    ssize_t n = readlinkat(dirfd(d), e->d_name, link, sizeof link - 1);
    if (n > 0) link[n] = '\0';
    found = n > 0 && strcmp(link, want) == 0;
  }
  closedir(d);
  return found;
}

static int has_exited(int pidfd) {
  struct pollfd p = {.fd = pidfd, .events = POLLIN};
  return poll(&p, 1, 0) != 0;
}

/*
 * Before Linux 6.5 (no SO_PEERPIDFD): a pidfd of the pid SO_PEERCRED recorded at connect, only
 * when the process it names holds the connection's other end after the pidfd was taken, and
 * still runs after that was seen. So it is the connector (or a process the connector handed its
 * socket to), never a process that got the pid after the connector ended: that one is refused
 * (ESRCH), and a CLI caller runs its command itself.
 */
static int pidfd_of_connector(int conn, pid_t pid, int *pidfd) {
  uint32_t peer = peer_inode(conn);
  *pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (*pidfd < 0) return -1;
  if (peer && holds_socket(pid, peer) && !has_exited(*pidfd)) return 0;
  close(*pidfd);
  *pidfd = -1;
  errno = ESRCH;
  return -1;
}

/* The peer's pid and uid, and a pidfd of it (close-on-exec); -1 with errno set on failure. */
static int peer_of(int conn, struct ucred *cred, int *pidfd) {
  socklen_t len = sizeof *cred;
  if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, cred, &len) != 0) return -1;
#ifndef PIPEWRIGHT_TEST_NO_PEERPIDFD /* a test build takes the older kernels' path */
  len = sizeof *pidfd;
  if (getsockopt(conn, SOL_SOCKET, SO_PEERPIDFD, pidfd, &len) == 0) return 0;
  if (errno != ENOPROTOOPT) return -1;
#endif
  return pidfd_of_connector(conn, cred->pid, pidfd);
}

/* Closes the descriptors a message brought (close-on-exec already): how many there were. */
static int close_received(struct msghdr *msg) {
  int count = !!(msg->msg_flags & MSG_CTRUNC);
  for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++, count++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      close(fd);
    }
  }
  return count;
}

/* Bytes of the call once they came, before the deadline (the caller's whole call has one): 0, or
 * -1 (too late, an error, the caller gone, or descriptors, which come with the go only). */
static int receive_by(int conn, char *to, size_t len, int64_t deadline) {
  while (len > 0) {
    char control[CMSG_SPACE(sizeof(int) * MAX_FDS)];
    struct iovec iov = {.iov_base = to, .iov_len = len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
    if (!ready_by(conn, POLLIN, deadline)) return -1;
    ssize_t n = recvmsg(conn, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0 || close_received(&msg)) return -1;
    to += n;
    len -= (size_t)n;
  }
  return 0;
}

/*
 * One whole call from a caller of our uid; -1 with errno set when accept itself fails. A caller
 * has CALL_WAIT_MS for all of it (the launcher waits less for its answer): one trickling bytes
 * holds a worker no longer.
 */
static int accept_call(int listen_fd, int *conn_out, pid_t *pid, int *pidfd, char **payload, uint32_t *len) {
  for (;;) {
    int conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (conn < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return -1;
    }
    int64_t deadline = now_ms() + CALL_WAIT_MS;
    struct ucred cred;
    *pidfd = -1;
    if (peer_of(conn, &cred, pidfd) == 0 && cred.uid == geteuid() && receive_by(conn, (char *)len, sizeof *len, deadline) == 0 &&
        *len <= MAX_CALL) {
      *payload = malloc(*len ? *len : 1);
      if (*payload && receive_by(conn, *payload, *len, deadline) == 0) {
        *conn_out = conn;
        *pid = cred.pid;
        return 0;
      }
      free(*payload);
    }
    if (*pidfd >= 0) close(*pidfd);
    close(conn);
  }
}

static int set_int(napi_env env, napi_value obj, const char *key, int32_t v) {
  napi_value value;
  return napi_create_int32(env, v, &value) == napi_ok && napi_set_named_property(env, obj, key, value) == napi_ok;
}

static napi_value js_take_call(napi_env env, napi_callback_info info) {
  int32_t listen_fd;
  if (!int_args(env, info, &listen_fd, 1, "takeCall(fd) takes an integer")) return NULL;
  int conn, pidfd;
  pid_t pid;
  char *payload = NULL;
  uint32_t len = 0;
  if (accept_call(listen_fd, &conn, &pid, &pidfd, &payload, &len) != 0) {
    throw_errno(env, "accept");
    return NULL;
  }
  napi_value result, bytes;
  int ok = napi_create_object(env, &result) == napi_ok && set_int(env, result, "conn", conn) && set_int(env, result, "pid", pid) &&
           set_int(env, result, "pidfd", pidfd) && napi_create_buffer_copy(env, len, payload, NULL, &bytes) == napi_ok &&
           napi_set_named_property(env, result, "payload", bytes) == napi_ok;
  free(payload);
  if (!ok) {
    close(pidfd);
    close(conn);
    return NULL;
  }
  return result;
}

static napi_value js_take_go(napi_env env, napi_callback_info info) {
  int32_t conn;
  if (!int_args(env, info, &conn, 1, "takeGo(conn) takes an integer")) return NULL;
  char go = 0, control[CMSG_SPACE(sizeof(int) * MAX_FDS)];
  struct iovec iov = {.iov_base = &go, .iov_len = 1};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
  ssize_t n;
  do n = recvmsg(conn, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  struct cmsghdr *c = n == 1 ? CMSG_FIRSTHDR(&msg) : NULL;
  if (go != 'g' || !c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int) * MAX_FDS) ||
      (msg.msg_flags & MSG_CTRUNC) || CMSG_NXTHDR(&msg, c)) {
    if (n > 0) close_received(&msg);
    napi_throw_error(env, "ENOGO", "takeGo: the caller sent no go (it gave up waiting, or went)");
    return NULL;
  }
  int fds[MAX_FDS];
  memcpy(fds, CMSG_DATA(c), sizeof fds);
  napi_value list, fd;
  int ok = napi_create_array_with_length(env, MAX_FDS, &list) == napi_ok;
  for (uint32_t i = 0; ok && i < MAX_FDS; i++) ok = napi_create_int32(env, fds[i], &fd) == napi_ok && napi_set_element(env, list, i, fd) == napi_ok;
  if (ok) return list;
  for (int i = 0; i < MAX_FDS; i++) close(fds[i]);
  return NULL;
}

static napi_value js_peer_of(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!int_args(env, info, &fd, 1, "peerOf(fd) takes an integer")) return NULL;
  struct ucred cred;
  int pidfd = -1;
  if (peer_of(fd, &cred, &pidfd) != 0) {
    throw_errno(env, "getsockopt(SO_PEERCRED)");
    return NULL;
  }
  napi_value result;
  if (napi_create_object(env, &result) == napi_ok && set_int(env, result, "pid", cred.pid) && set_int(env, result, "uid", (int32_t)cred.uid) &&
      set_int(env, result, "pidfd", pidfd))
    return result;
  close(pidfd);
  return NULL;
}

static napi_value js_exited(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!int_args(env, info, &fd, 1, "exited(pidfd) takes an integer")) return NULL;
  /* A pidfd polls readable once its process has ended. */
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int n;
  do n = poll(&p, 1, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    throw_errno(env, "poll(pidfd)");
    return NULL;
  }
  napi_value result;
  if (napi_get_boolean(env, n > 0, &result) != napi_ok) return NULL;
  return result;
}

static napi_value js_dup2(napi_env env, napi_callback_info info) {
  int32_t a[2];
  if (!int_args(env, info, a, 2, "dup2(from, to) takes two integers")) return NULL;
  if (dup2(a[0], a[1]) < 0) throw_errno(env, "dup2");
  return NULL;
}

static napi_value js_die_with_parent(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  bool on = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_get_value_bool(env, argv[0], &on) != napi_ok) {
    napi_throw_type_error(env, NULL, "dieWithParent(on) takes a boolean");
    return NULL;
  }
  if (prctl(PR_SET_PDEATHSIG, on ? SIGKILL : 0) != 0) throw_errno(env, "prctl(PR_SET_PDEATHSIG)");
  return NULL;
}

// cpuKey(): this machine's CPU key (cpu-key.h) in hex, as the build wrote it beside the snapshot.
static napi_value js_cpu_key(napi_env env, napi_callback_info info) {
  (void)info;
  char hex[17];
  snprintf(hex, sizeof hex, "%016" PRIx64, cpu_key());
  napi_value out;
  napi_create_string_utf8(env, hex, NAPI_AUTO_LENGTH, &out);
  return out;
}

// A JS string as a malloc'd C string (the caller frees it), or NULL.
static char *c_string(napi_env env, napi_value v) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char *s = malloc(len + 1);
  if (s && napi_get_value_string_utf8(env, v, s, len + 1, &len) != napi_ok) {
    free(s);
    return NULL;
  }
  return s;
}

// exec(argv): this process becomes argv[0] run with argv (execv: same pid, environment and open
// descriptors); returns only by throwing, with the process as it was. Node has no execve before
// version 23.
static napi_value js_exec(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg;
  uint32_t n = 0;
  if (napi_get_cb_info(env, info, &argc, &arg, NULL, NULL) != napi_ok || argc < 1 || napi_get_array_length(env, arg, &n) != napi_ok || n == 0) {
    napi_throw_type_error(env, NULL, "exec(argv) takes a non-empty array of strings");
    return NULL;
  }
  char **argv = calloc((size_t)n + 1, sizeof *argv);
  if (!argv) {
    throw_errno(env, "calloc");
    return NULL;
  }
  uint32_t made = 0;
  for (napi_value item; made < n && napi_get_element(env, arg, made, &item) == napi_ok; made++)
    if (!(argv[made] = c_string(env, item))) break;
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (made == n) {
    // Node marks its stdio close-on-exec: without this the new program would find them closed.
    int kept[3];
    for (int fd = 0; fd < 3; fd++) {
      kept[fd] = fcntl(fd, F_GETFD);
      if (kept[fd] >= 0) fcntl(fd, F_SETFD, kept[fd] & ~FD_CLOEXEC);
    }
    execv(argv[0], argv);
    int error = errno;
    for (int fd = 0; fd < 3; fd++)
      if (kept[fd] >= 0) fcntl(fd, F_SETFD, kept[fd]);
    errno = error;
    throw_errno(env, "execv");
  } else if (!pending) {
    napi_throw_type_error(env, NULL, "exec(argv) takes a non-empty array of strings");
  }
  for (uint32_t i = 0; i < made; i++) free(argv[i]);
  free(argv);
  return NULL;
}

static int export_fn(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  return napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn) == napi_ok &&
         napi_set_named_property(env, exports, name, fn) == napi_ok;
}

NAPI_MODULE_INIT() {
  if (!export_fn(env, exports, "setns", js_setns) || !export_fn(env, exports, "tryLock", js_try_lock) ||
      !export_fn(env, exports, "nlOpen", js_nl_open) || !export_fn(env, exports, "nlRequest", js_nl_request) ||
      !export_fn(env, exports, "nlRequestSync", js_nl_request_sync) ||
      !export_fn(env, exports, "unixListen", js_unix_listen) || !export_fn(env, exports, "takeCall", js_take_call) ||
      !export_fn(env, exports, "takeGo", js_take_go) ||
      !export_fn(env, exports, "peerOf", js_peer_of) || !export_fn(env, exports, "exited", js_exited) ||
      !export_fn(env, exports, "dup2", js_dup2) || !export_fn(env, exports, "dieWithParent", js_die_with_parent) ||
      !export_fn(env, exports, "cpuKey", js_cpu_key) || !export_fn(env, exports, "exec", js_exec) || !export_fn(env, exports, "nlWatch", js_nl_watch) ||
      !export_fn(env, exports, "nlUnwatch", js_nl_unwatch) || !export_fn(env, exports, "announce", js_announce) ||
      !export_fn(env, exports, "spawnTool", js_spawn_tool) || !export_fn(env, exports, "signalTool", js_signal_tool)) {
    napi_throw_error(env, NULL, "syscalls.node: could not export its functions");
    return NULL;
  }
  return exports;
}
