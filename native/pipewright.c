// pipewright's executable (dist/bin/pipewright). Starting Node costs more than most commands'
// own work, so when a `pipewright daemon` runs, this hands the command line to one of the warm
// workers it keeps (Node processes already started from the CLI's snapshot, waiting on
// /run/pipewright/cli.sock; src/daemon/cli-workers.ts): argv, environment, working directory,
// umask; once the worker has answered (within ANSWER_WAIT_MS, else this runs the command itself),
// a go with this process's stdin, stdout and stderr themselves (SCM_RIGHTS). The worker runs the
// command as this process would have, and sends back its exit status; signals this process gets
// (Ctrl-C, a timeout's SIGTERM, Ctrl-Z: the worker stops with it) go on to the worker. When no
// worker takes the call (no daemon, PIPEWRIGHT_CLI_SOCKET empty, no answer within the wait, a
// worker of another build, or a caller the worker is not like: another namespace, fewer
// capabilities), this runs Node from the snapshot itself, as a plain launcher.
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>
#include "cpu-key.h"
#include "io.h"

extern char **environ;

#define DEFAULT_SOCKET "/run/pipewright/cli.sock"
// The call's form, and the build this executable belongs to (scripts/build-native.sh passes the
// bundle's build id): a worker of another build declines, so old code never runs a new launcher's
// command after an upgrade (nor the other way round).
#define CALL_VERSION "pipewright-call-2"
#ifndef BUILD_ID
#error "BUILD_ID: build with scripts/build-native.sh, which passes dist/build-id"
#endif
// The V8 flags the snapshot was built with (src/util/snapshot-flags.ts, passed by
// scripts/build-native.sh): Node loads a snapshot only under the flags that made it.
#ifndef SNAPSHOT_FLAGS
#error "SNAPSHOT_FLAGS: build with scripts/build-native.sh, which passes src/util/snapshot-flags.ts's"
#endif
static const char *const SNAPSHOT_V8_FLAGS[] = {SNAPSHOT_FLAGS};
#define SNAPSHOT_V8_FLAG_COUNT (sizeof SNAPSHOT_V8_FLAGS / sizeof SNAPSHOT_V8_FLAGS[0])
// How long a worker has to answer before this process runs the command itself: a daemon whose
// workers are all busy, stopped or gone must not hang every command.
#define ANSWER_WAIT_MS 1000

// The call's strings are NUL-separated: each goes in with its NUL.
static int add_str(struct buf *b, const char *s) {
  return buf_append(b, s, strlen(s) + 1);
}

// Whether the snapshot was built on a CPU like this one (the key the build wrote beside it).
static int snapshot_fits(const char *blob) {
  char path[PATH_MAX + 40], want[32] = "", have[32];
  snprintf(path, sizeof path, "%s.cpu", blob);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  int read = fscanf(f, "%31s", want) == 1;
  fclose(f);
  snprintf(have, sizeof have, "%016" PRIx64, cpu_key());
  return read && strcmp(want, have) == 0;
}

// Node from the snapshot (or the bundle where no snapshot was built, or it was built on a CPU
// with other features), beside this executable.
static void run_node(int argc, char **argv) {
  char dist[PATH_MAX], blob[PATH_MAX + 32], bundle[PATH_MAX + 32];
  ssize_t n = readlink("/proc/self/exe", dist, sizeof dist - 1);
  if (n <= 0) {
    fprintf(stderr, "pipewright: cannot find its own path: %s\n", strerror(errno));
    exit(1);
  }
  dist[n] = '\0';
  for (int up = 0; up < 2; up++) {  // .../dist/bin/pipewright -> .../dist
    char *slash = strrchr(dist, '/');
    if (slash) *slash = '\0';
  }
  snprintf(blob, sizeof blob, "%s/pipewright.blob", dist);
  snprintf(bundle, sizeof bundle, "%s/bundle/pipewright.mjs", dist);
  char **args = calloc((size_t)argc + 4 + SNAPSHOT_V8_FLAG_COUNT, sizeof *args);
  if (!args) exit(1);
  int i = 0;
  args[i++] = "node";
  if (access(blob, R_OK) == 0 && snapshot_fits(blob)) {
    for (size_t f = 0; f < SNAPSHOT_V8_FLAG_COUNT; f++) args[i++] = (char *)SNAPSHOT_V8_FLAGS[f];
    args[i++] = "--snapshot-blob";
    args[i++] = blob;
  }
  args[i++] = bundle;
  for (int a = 1; a < argc; a++) args[i++] = argv[a];
  execvp("node", args);
  fprintf(stderr, "pipewright: cannot run node: %s (install Node.js 20 or later)\n", strerror(errno));
  exit(127);
}

// What the worker needs to run the command as this process: see parseCall in src/cli/warm-worker.ts.
static int build_call(struct buf *call, int argc, char **argv) {
  char cwd[PATH_MAX], number[32];
  if (!getcwd(cwd, sizeof cwd)) return -1;
  mode_t mask = umask(0);
  umask(mask);
  if (add_str(call, CALL_VERSION) || add_str(call, BUILD_ID) || add_str(call, cwd)) return -1;
  snprintf(number, sizeof number, "%o", (unsigned)mask);
  if (add_str(call, number)) return -1;
  snprintf(number, sizeof number, "%d", argc);
  if (add_str(call, number)) return -1;
  for (int i = 0; i < argc; i++)
    if (add_str(call, argv[i])) return -1;
  for (char **e = environ; *e; e++)
    if (add_str(call, *e)) return -1;
  return 0;
}

// Moves n bytes over the non-blocking socket before the deadline: 0, or -1 (an error, the peer
// gone, or too late).
static int move_by(int sock, char *p, size_t n, int out, int64_t deadline) {
  while (n > 0) {
    ssize_t r = out ? send(sock, p, n, MSG_NOSIGNAL) : recv(sock, p, n, 0);
    if (r > 0) {
      p += r;
      n -= (size_t)r;
    } else if (r == 0 || (errno != EAGAIN && errno != EINTR) || (errno == EAGAIN && !ready_by(sock, out ? POLLOUT : POLLIN, deadline))) {
      return -1;
    }
  }
  return 0;
}

// Sends the call's length and bytes (no descriptors: a call waiting in a backlog must not hold
// this process's stdout open after it has run the command itself).
static int send_call(int sock, struct buf *call, int64_t deadline) {
  uint32_t len = (uint32_t)call->len;
  return move_by(sock, (char *)&len, sizeof len, 1, deadline) || move_by(sock, call->data, call->len, 1, deadline) ? -1 : 0;
}

// The go, with stdin, stdout and stderr attached: from here on the worker runs the command.
static int send_go(int sock) {
  int fds[3] = {0, 1, 2};
  for (int i = 0; i < 3; i++) {  // a closed one travels as /dev/null, as Node would open it
    if (fcntl(i, F_GETFD) < 0) {
      int null = open("/dev/null", O_RDWR);
      if (null < 0 || (null != i && dup2(null, i) < 0)) return -1;
      if (null != i) close(null);
    }
  }
  char go = 'g', control[CMSG_SPACE(sizeof fds)];
  memset(control, 0, sizeof control);
  struct iovec iov = {.iov_base = &go, .iov_len = 1};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof fds);
  memcpy(CMSG_DATA(c), fds, sizeof fds);
  ssize_t sent;
  do sent = sendmsg(sock, &msg, MSG_NOSIGNAL);
  while (sent < 0 && errno == EINTR);
  return sent == 1 ? 0 : -1;
}

// The signals this process passes on to the worker running its command (a terminal's resize too).
static const int FORWARDED[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGTSTP, SIGCONT};

static void forwarded_set(sigset_t *set) {
  sigemptyset(set);
  for (size_t i = 0; i < sizeof FORWARDED / sizeof FORWARDED[0]; i++) sigaddset(set, FORWARDED[i]);
}

// By the worker's pidfd: once the worker has gone, its pid may name another process.
static void signal_worker(int pidfd, int sig) {
  syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

// A stopped worker must not stay stopped once this process has gone (kill -9 of a stopped job):
// the worker ends with its caller only when it runs. At the first Ctrl-Z a watcher starts (Ctrl-Z
// does not stop it: its SIGTSTP stays blocked) and continues the worker when this process goes.
static void watch_over(int pidfd) {
  static int watching;
  if (watching) return;
  pid_t launcher = getpid(), child = fork();
  if (child != 0) {
    watching = child > 0;
    return;
  }
  sigset_t death;
  sigemptyset(&death);
  sigaddset(&death, SIGRTMIN);
  sigprocmask(SIG_BLOCK, &death, NULL);
  // Nothing of this process's: a pipe's reader must see its end when this process ends.
  for (int fd = 0; fd < 3; fd++) close(fd);
  if (pidfd > 3) close_range(3, (unsigned)pidfd - 1, 0);
  close_range((unsigned)pidfd + 1, ~0u, 0);
  prctl(PR_SET_PDEATHSIG, SIGRTMIN);
  while (getppid() == launcher) sigwaitinfo(&death, NULL);
  signal_worker(pidfd, SIGCONT);
  _exit(0);
}

// Ctrl-Z: the worker stops, then this process, as SIGTSTP's own action would stop it (not at all
// in an orphaned process group: the kernel drops the signal there). Once this process runs again
// (a shell's `fg` or `bg` continues only this one: the worker is in a session of its own), so does
// the worker.
static void stop_both(int pidfd) {
  sigset_t tstp;
  sigemptyset(&tstp);
  sigaddset(&tstp, SIGTSTP);
  watch_over(pidfd);
  signal_worker(pidfd, SIGSTOP);
  raise(SIGTSTP);  // pending while blocked (signals come through the signalfd): taken at the unblock
  sigprocmask(SIG_UNBLOCK, &tstp, NULL);
  sigprocmask(SIG_BLOCK, &tstp, NULL);
  signal_worker(pidfd, SIGCONT);
}

// Passes one signal on; the last one that ends a process, or 0.
static int pass_on(int sig, int pidfd, int ending) {
  if (sig == SIGTSTP) {
    stop_both(pidfd);
    return ending;
  }
  signal_worker(pidfd, sig);
  return sig == SIGCONT || sig == SIGWINCH ? ending : sig;
}

// Waits for the worker's exit status, passing signals on (they are blocked and read from sigfd,
// outside signal context); a worker that went without one went by a signal.
static int wait_for_status(int sock, int pidfd, int sigfd, pid_t pid) {
  int32_t status;
  size_t got = 0;
  int ending = 0;
  for (;;) {
    struct pollfd p[2] = {{.fd = sock, .events = POLLIN}, {.fd = sigfd, .events = POLLIN}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    struct signalfd_siginfo si;
    if ((p[1].revents & POLLIN) && read(sigfd, &si, sizeof si) == (ssize_t)sizeof si) ending = pass_on((int)si.ssi_signo, pidfd, ending);
    if (!p[0].revents) continue;
    ssize_t r = recv(sock, (char *)&status + got, sizeof status - got, 0);
    if (r > 0 && (got += (size_t)r) == sizeof status) return status & 0xff;
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) break;
  }
  if (ending) {  // ended by what this process was sent: end the same way
    sigset_t all;
    forwarded_set(&all);
    signal(ending, SIG_DFL);
    raise(ending);
    sigprocmask(SIG_UNBLOCK, &all, NULL);
  }
  fprintf(stderr, "pipewright: the worker running this command (pid %d) ended without an exit status (killed)\n", (int)pid);
  return 137;
}

// A pidfd of the worker that answered: its pid names it while it holds the other end of `sock`
// (it waits there for the go), so a pidfd taken before the socket is seen still open is its own.
static int pidfd_of_worker(int sock, pid_t pid) {
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  struct pollfd p = {.fd = sock, .events = 0};
  if (pidfd >= 0 && poll(&p, 1, 0) == 0) return pidfd;
  if (pidfd >= 0) close(pidfd);
  return -1;
}

// Hands the command to a warm worker: its exit status, or -1 when none took it (nothing ran, and
// nothing will: a worker runs the command only after this process's go, sent once it answered
// within ANSWER_WAIT_MS).
static int hand_over(const char *path, int argc, char **argv) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof addr.sun_path) return -1;
  strcpy(addr.sun_path, path);
  int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (sock < 0) return -1;
  int64_t deadline = now_ms() + ANSWER_WAIT_MS;
  struct buf call = {0};
  char answer[1 + sizeof(int32_t)];
  int32_t pid = 0;
  int pidfd = -1, sigfd = -1;
  sigset_t forwarded;
  forwarded_set(&forwarded);
  // A full backlog (EAGAIN: every worker busy) is no answer either.
  int answered = connect(sock, (struct sockaddr *)&addr, sizeof addr) == 0 && build_call(&call, argc, argv) == 0 &&
                 send_call(sock, &call, deadline) == 0 && move_by(sock, answer, sizeof answer, 0, deadline) == 0 && answer[0] == 'y';
  free(call.data);
  if (answered) memcpy(&pid, answer + 1, sizeof pid);
  if (answered && (pidfd = pidfd_of_worker(sock, pid)) >= 0 && (sigfd = signalfd(-1, &forwarded, SFD_CLOEXEC)) >= 0) {
    sigprocmask(SIG_BLOCK, &forwarded, NULL);
    if (send_go(sock) == 0) return wait_for_status(sock, pidfd, sigfd, pid);
    sigprocmask(SIG_UNBLOCK, &forwarded, NULL);
  }
  if (sigfd >= 0) close(sigfd);
  if (pidfd >= 0) close(pidfd);
  close(sock);
  return -1;
}

int main(int argc, char **argv) {
  const char *path = getenv("PIPEWRIGHT_CLI_SOCKET");
  if (!path) path = DEFAULT_SOCKET;
  if (*path) {
    int status = hand_over(path, argc, argv);
    if (status >= 0) return status;
  }
  run_node(argc, argv);
  return 1;
}
