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
 *   nlOpen() -> fd                   a NETLINK_ROUTE socket (close-on-exec) in the namespace of the
 *                                    calling thread, with extended acks on (the kernel's own words
 *                                    for an error) and acks capped (an error does not echo the request).
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
 *                                    over MAX_ANSWER, or none within ANSWER_WAIT_S, is an error.
 *
 *   unixListen(path) -> fd           a listening Unix stream socket at `path`, mode 0600, close-on-exec,
 *                                    that libuv never watches: the daemon hands it to its warm CLI
 *                                    workers (src/daemon/cli-workers.ts), which accept on it themselves.
 *   takeCall(fd) -> {conn, pid, fds, payload}
 *                                    blocks (deliberately, on the main thread: a warm worker has
 *                                    nothing else to do) until a caller with this process's uid
 *                                    connects and sends its call: a 4-byte length, then that many
 *                                    bytes, the first carrying its stdin, stdout and stderr
 *                                    (SCM_RIGHTS). Callers of another uid, or that send nothing
 *                                    whole within 2 s, are dropped and the wait goes on.
 *                                    The result's pidfd (see peerOf) is the caller's.
 *   peerOf(fd) -> {pid, uid, pidfd}  who connected a Unix socket: SO_PEERCRED's pid and uid, and a pidfd of
 *                                    that process (SO_PEERPIDFD; on a kernel before 6.5, pidfd_open of the
 *                                    pid). The caller closes the pidfd.
 *   exited(pidfd) -> boolean         whether the process a pidfd names has ended. Read after the caller's
 *                                    /proc files: a process still running then is the one that was read
 *                                    (its pid cannot have been given to another).
 *   dup2(from, to) -> undefined      dup2(2): a worker puts its caller's descriptors on 0, 1, 2.
 *   dieWithParent(on) -> undefined   prctl(PR_SET_PDEATHSIG): SIGKILL when the parent dies (on), or not.
 *
 * They throw Error("<call>: <reason>") on any other failure (nlRequest rejects). Every N-API
 * status is checked. Messages are encoded and parsed in TypeScript (src/kernel/netlink).
 */
#define _GNU_SOURCE
#include <errno.h>
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
#include <sys/un.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/netlink.h>
#include "cpu-key.h"
#include "io.h"
#include "nl-walk.h"

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

static napi_value js_nl_open(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  int one = 1;
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
     answer: a flood from a guest's root filled the queue and the kernel dropped its ack. */
  struct timeval wait = {.tv_sec = ANSWER_WAIT_S};
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

/* Reads the next datagram the kernel sent (portid 0); 1 while the answer goes on, 0 at its end or
   on an error (set in job). Another socket's datagram (a process with CAP_NET_ADMIN over the
   namespace can send one) is skipped unread, whatever its size. */
static int receive_from_kernel(nl_job *job, char *buf, uint32_t seq) {
  for (;;) {
    struct sockaddr_nl from;
    struct iovec iov = {.iov_base = buf, .iov_len = RECV_BUF};
    struct msghdr msg = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n = recvmsg(job->fd, &msg, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      fail_job(job, errno == EAGAIN ? ETIMEDOUT : errno, "recvmsg(netlink)");
      return 0;
    }
    if (msg.msg_namelen < sizeof from || from.nl_family != AF_NETLINK || from.nl_pid != 0) continue;
    if (msg.msg_flags & MSG_TRUNC) {
      fail_job(job, EMSGSIZE, "recvmsg(netlink)");
      return 0;
    }
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
  char *buf = malloc(RECV_BUF);
  if (!buf) {
    fail_job(job, ENOMEM, "malloc");
    return;
  }
  while (receive_from_kernel(job, buf, seq)) continue;
  free(buf);
}

static void nl_complete(napi_env env, napi_status status, void *data) {
  nl_job *job = data;
  napi_value value;
  if (status == napi_ok && job->error == 0 && napi_create_buffer_copy(env, job->answer_len, job->answer, NULL, &value) == napi_ok) {
    napi_resolve_deferred(env, job->deferred, value);
  } else {
    char msg[128];
    napi_value text;
    snprintf(msg, sizeof msg, "%s: %s", job->failed_call ? job->failed_call : "netlink", strerror(job->error ? job->error : EIO));
    if (napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text) == napi_ok && napi_create_error(env, NULL, text, &value) == napi_ok) {
      napi_reject_deferred(env, job->deferred, value);
    }
  }
  napi_delete_reference(env, job->message_ref);
  napi_delete_async_work(env, job->work);
  free(job->answer);
  free(job);
}

static napi_value js_nl_request(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], promise, name;
  int32_t fd;
  void *bytes;
  size_t len;
  bool is_buffer = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_is_buffer(env, argv[1], &is_buffer) != napi_ok || !is_buffer || napi_get_buffer_info(env, argv[1], &bytes, &len) != napi_ok ||
      len < sizeof(struct nlmsghdr)) {
    napi_throw_type_error(env, NULL, "nlRequest(fd, message) takes an integer and a Buffer holding one netlink message");
    return NULL;
  }
  nl_job *job = calloc(1, sizeof *job);
  if (!job) {
    napi_throw_error(env, NULL, "nlRequest: out of memory");
    return NULL;
  }
  job->fd = fd;
  job->message = bytes;
  job->message_len = len;
  /* The Buffer stays referenced (so its bytes stay put) until the request completes. */
  if (napi_create_reference(env, argv[1], 1, &job->message_ref) != napi_ok || napi_create_promise(env, &job->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, "pipewright:netlink", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, nl_execute, nl_complete, job, &job->work) != napi_ok || napi_queue_async_work(env, job->work) != napi_ok) {
    napi_throw_error(env, NULL, "nlRequest: could not queue the request");
    return NULL;
  }
  return promise;
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

enum { MAX_CALL = 1 << 20, MAX_FDS = 3 };

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77 /* Linux 6.5; Debian 12's headers predate it */
#endif

/* The peer's pid and uid, and a pidfd of it (close-on-exec); -1 with errno set on failure. */
static int peer_of(int conn, struct ucred *cred, int *pidfd) {
  socklen_t len = sizeof *cred;
  if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, cred, &len) != 0) return -1;
  len = sizeof *pidfd;
  if (getsockopt(conn, SOL_SOCKET, SO_PEERPIDFD, pidfd, &len) == 0) return 0;
  if (errno != ENOPROTOOPT) return -1;
  /* An older kernel: the pid as it is now (a process that went before this names nobody, or another). */
  *pidfd = (int)syscall(SYS_pidfd_open, cred->pid, 0);
  return *pidfd < 0 ? -1 : 0;
}

/* The call's length and descriptors (close-on-exec). 0 on success, with *nfds descriptors taken. */
static int receive_header(int conn, uint32_t *len, int *fds, int *nfds) {
  char control[CMSG_SPACE(sizeof(int) * MAX_FDS)];
  struct iovec iov = {.iov_base = len, .iov_len = sizeof *len};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
  ssize_t n;
  do n = recvmsg(conn, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  *nfds = 0;
  /* On an error (the 2 s limit) the kernel leaves msg_controllen as given: the buffer holds no descriptors. */
  if (n < 0) return -1;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    for (int i = 0; i < count; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (*nfds < MAX_FDS) fds[(*nfds)++] = fd;
      else close(fd);
    }
  }
  if (n == (ssize_t)sizeof *len && !(msg.msg_flags & MSG_CTRUNC) && *nfds == MAX_FDS && *len <= MAX_CALL) return 0;
  for (int i = 0; i < *nfds; i++) close(fds[i]);
  return -1;
}

/* One whole call from a caller of our uid; -1 with errno set when accept itself fails. */
static int accept_call(int listen_fd, int *conn_out, pid_t *pid, int *pidfd, int *fds, char **payload, uint32_t *len) {
  for (;;) {
    int conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (conn < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return -1;
    }
    struct ucred cred;
    struct timeval limit = {.tv_sec = 2}, none = {0};
    int nfds = 0;
    *pidfd = -1;
    if (peer_of(conn, &cred, pidfd) == 0 && cred.uid == geteuid() &&
        setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit) == 0 && receive_header(conn, len, fds, &nfds) == 0) {
      *payload = malloc(*len ? *len : 1);
      if (*payload && read_exactly(conn, *payload, *len) == 0 && setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none) == 0) {
        *conn_out = conn;
        *pid = cred.pid;
        return 0;
      }
      free(*payload);
      for (int i = 0; i < nfds; i++) close(fds[i]);
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
  int conn, pidfd, fds[MAX_FDS];
  pid_t pid;
  char *payload = NULL;
  uint32_t len = 0;
  if (accept_call(listen_fd, &conn, &pid, &pidfd, fds, &payload, &len) != 0) {
    throw_errno(env, "accept");
    return NULL;
  }
  napi_value result, list, bytes, fd;
  int ok = napi_create_object(env, &result) == napi_ok && set_int(env, result, "conn", conn) && set_int(env, result, "pid", pid) &&
           set_int(env, result, "pidfd", pidfd) &&
           napi_create_array_with_length(env, MAX_FDS, &list) == napi_ok && napi_set_named_property(env, result, "fds", list) == napi_ok &&
           napi_create_buffer_copy(env, len, payload, NULL, &bytes) == napi_ok && napi_set_named_property(env, result, "payload", bytes) == napi_ok;
  for (uint32_t i = 0; ok && i < MAX_FDS; i++) ok = napi_create_int32(env, fds[i], &fd) == napi_ok && napi_set_element(env, list, i, fd) == napi_ok;
  free(payload);
  if (!ok) {
    for (int i = 0; i < MAX_FDS; i++) close(fds[i]);
    close(pidfd);
    close(conn);
    return NULL;
  }
  return result;
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

static int export_fn(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  return napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn) == napi_ok &&
         napi_set_named_property(env, exports, name, fn) == napi_ok;
}

NAPI_MODULE_INIT() {
  if (!export_fn(env, exports, "setns", js_setns) || !export_fn(env, exports, "tryLock", js_try_lock) ||
      !export_fn(env, exports, "nlOpen", js_nl_open) || !export_fn(env, exports, "nlRequest", js_nl_request) ||
      !export_fn(env, exports, "unixListen", js_unix_listen) || !export_fn(env, exports, "takeCall", js_take_call) ||
      !export_fn(env, exports, "peerOf", js_peer_of) || !export_fn(env, exports, "exited", js_exited) ||
      !export_fn(env, exports, "dup2", js_dup2) || !export_fn(env, exports, "dieWithParent", js_die_with_parent) ||
      !export_fn(env, exports, "cpuKey", js_cpu_key)) {
    napi_throw_error(env, NULL, "syscalls.node: could not export its functions");
    return NULL;
  }
  return exports;
}
