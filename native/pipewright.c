// pipewright's executable (dist/bin/pipewright). Starting Node costs more than most commands'
// own work, so when a `pipewright daemon` runs, this hands the command line to one of the warm
// workers it keeps (Node processes already started from the CLI's snapshot, waiting on
// /run/pipewright/cli.sock; src/daemon/cli-workers.ts): argv, environment, working directory,
// umask, and this process's stdin, stdout and stderr themselves (SCM_RIGHTS). The worker runs the
// command as this process would have, and sends back its exit status; signals this process gets
// (Ctrl-C, a timeout's SIGTERM) go on to the worker. When no worker takes the call (no daemon,
// PIPEWRIGHT_CLI_SOCKET empty, or a caller the worker is not like: another namespace, fewer
// capabilities), this runs Node from the snapshot itself, as a plain launcher.
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "cpu-key.h"
#include "io.h"

extern char **environ;

#define DEFAULT_SOCKET "/run/pipewright/cli.sock"
#define CALL_VERSION "pipewright-call-1"

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
  char **args = calloc((size_t)argc + 4, sizeof *args);
  if (!args) exit(1);
  int i = 0;
  args[i++] = "node";
  if (access(blob, R_OK) == 0 && snapshot_fits(blob)) {
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
  if (add_str(call, CALL_VERSION) || add_str(call, cwd)) return -1;
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

// Sends the call's length and bytes, with stdin, stdout and stderr attached to the first part.
static int send_call(int sock, const struct buf *call) {
  int fds[3] = {0, 1, 2};
  for (int i = 0; i < 3; i++) {  // a closed one travels as /dev/null, as Node would open it
    if (fcntl(i, F_GETFD) < 0) {
      int null = open("/dev/null", O_RDWR);
      if (null < 0 || (null != i && dup2(null, i) < 0)) return -1;
      if (null != i) close(null);
    }
  }
  uint32_t len = (uint32_t)call->len;
  char control[CMSG_SPACE(sizeof fds)];
  memset(control, 0, sizeof control);
  struct iovec iov[2] = {{.iov_base = &len, .iov_len = sizeof len}, {.iov_base = call->data, .iov_len = call->len}};
  struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2, .msg_control = control, .msg_controllen = sizeof control};
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof fds);
  memcpy(CMSG_DATA(c), fds, sizeof fds);
  ssize_t sent = sendmsg(sock, &msg, MSG_NOSIGNAL);
  if (sent < (ssize_t)sizeof len) return -1;
  size_t done = (size_t)sent - sizeof len;
  return send_all(sock, call->data + done, call->len - done);
}

static volatile pid_t worker;
static volatile sig_atomic_t ending;  // the last signal sent on that ends a process

// Signals for this process go to the worker running its command (a terminal's resize too). Ctrl-Z stops both.
static void forward(int sig) {
  kill(worker, sig == SIGTSTP ? SIGSTOP : sig);
  if (sig != SIGTSTP && sig != SIGCONT && sig != SIGWINCH) ending = sig;
  if (sig == SIGTSTP) {
    signal(SIGTSTP, SIG_DFL);
    raise(SIGTSTP);
    signal(SIGTSTP, forward);
  }
}

// Waits for the worker's exit status; a worker that went without one went by a signal.
static int wait_for_status(int sock) {
  static const int SIGNALS[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGTSTP, SIGCONT};
  for (size_t i = 0; i < sizeof SIGNALS / sizeof SIGNALS[0]; i++) {
    struct sigaction sa = {.sa_handler = forward};
    sigaction(SIGNALS[i], &sa, NULL);
  }
  int32_t status;
  if (read_exactly(sock, &status, sizeof status) == 0) return status & 0xff;
  int sig = ending;
  if (sig) {  // ended by what this process was sent: end the same way
    signal(sig, SIG_DFL);
    raise(sig);
  }
  fprintf(stderr, "pipewright: the worker running this command (pid %d) ended without an exit status (killed)\n", (int)worker);
  return 137;
}

// Hands the command to a warm worker: its exit status, or -1 when none took it (nothing ran).
static int hand_over(const char *path, int argc, char **argv) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof addr.sun_path) return -1;
  strcpy(addr.sun_path, path);
  int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return -1;
  struct buf call = {0};
  char answer;
  int32_t pid;
  if (connect(sock, (struct sockaddr *)&addr, sizeof addr) < 0 || build_call(&call, argc, argv) < 0 || send_call(sock, &call) < 0 ||
      read_exactly(sock, &answer, 1) < 0 || answer != 'y' || read_exactly(sock, &pid, sizeof pid) < 0) {
    free(call.data);
    close(sock);
    return -1;
  }
  free(call.data);
  worker = pid;
  return wait_for_status(sock);
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
