// pipewright's CNI plugin entry, installed as `pipewright` in the runtime's plugin directories.
// A runtime runs a plugin once per call, and starting Node costs more than the reference Go
// plugin's whole ADD: so this hands the call (CNI_* variables, the configuration) to a running
// `pipewright daemon` over its CNI socket and prints its answer. When no daemon answers, or it
// fails before answering, it runs the Node CLI (../bin/pipewright beside this file) with the same
// input, which does the work itself (every CNI command is idempotent, so a call the daemon may
// have begun is safe to run again). Without CNI_COMMAND, or with arguments, it is the CLI.
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "io.h"

static const char *const VARS[] = {"CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"};
static const char *const HEADERS[] = {"X-Cni-Command", "X-Cni-Containerid", "X-Cni-Netns", "X-Cni-Ifname", "X-Cni-Args", "X-Cni-Path"};
#define NVARS (sizeof VARS / sizeof VARS[0])

static int read_all(int fd, struct buf *b) {
  char chunk[65536];
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n == 0) return 0;
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (buf_append(b, chunk, (size_t)n) < 0) return -1;
  }
}

// The Node CLI, with `input` (what this process read from stdin) as its stdin again.
static void run_node(char **argv, const struct buf *input) {
  char self[PATH_MAX], launcher[PATH_MAX + 32] = "../bin/pipewright";
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    self[n] = '\0';
    char *slash = strrchr(self, '/');  // .../dist/cni-plugin/pipewright -> .../dist
    if (slash) *slash = '\0';
    slash = strrchr(self, '/');
    if (slash) *slash = '\0';
    snprintf(launcher, sizeof launcher, "%s/bin/pipewright", self);
    if (input) {
      int fd = memfd_create("pipewright-cni-stdin", 0);
      if (fd < 0 || write_all(fd, input->data ? input->data : "", input->len) < 0 || lseek(fd, 0, SEEK_SET) < 0 || dup2(fd, 0) < 0) goto fail;
      close(fd);
    }
    argv[0] = launcher;
    execv(launcher, argv);
  }
fail:
  printf("{\"cniVersion\":\"1.1.0\",\"code\":5,\"msg\":\"pipewright: cannot run %s: %s\"}\n", launcher, strerror(errno));
  exit(1);
}

// The daemon's answer: its exit code, and the body to print. -1 when there is no whole answer.
static int parse_answer(struct buf *r, const char **body) {
  if (!r->data || strncmp(r->data, "HTTP/1.1 200 ", 13) != 0) return -1;
  char *end = strstr(r->data, "\r\n\r\n");
  if (!end) return -1;
  *end = '\0';
  *body = end + 4;
  char *h = strcasestr(r->data, "\r\nX-Cni-Exit: ");
  return h ? atoi(h + 14) : -1;
}

// Hands the call to the daemon; its exit code, or -1 when no daemon took it.
static int hand_over(const struct buf *input) {
  const char *path = getenv("PIPEWRIGHT_CNI_SOCKET");
  if (!path || !*path) path = "/run/pipewright/cni.sock";
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof addr.sun_path) return -1;
  strcpy(addr.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) return -1;
  struct buf req = {0};
  char line[PATH_MAX * 2];
  snprintf(line, sizeof line, "POST /cni HTTP/1.1\r\nHost: pipewright\r\nConnection: close\r\nContent-Length: %zu\r\n", input->len);
  buf_append(&req, line, strlen(line));
  for (size_t i = 0; i < NVARS; i++) {
    const char *v = getenv(VARS[i]);
    if (!v) continue;
    if (strpbrk(v, "\r\n") || strlen(v) > sizeof line - 64) return -1;  // not a header value: Node takes it
    snprintf(line, sizeof line, "%s: %s\r\n", HEADERS[i], v);
    buf_append(&req, line, strlen(line));
  }
  buf_append(&req, "\r\n", 2);
  struct buf res = {0};
  if (send_all(fd, req.data, req.len) < 0 || send_all(fd, input->data ? input->data : "", input->len) < 0 || read_all(fd, &res) < 0) return -1;
  close(fd);
  const char *body = NULL;
  int code = parse_answer(&res, &body);
  if (code < 0) return -1;
  fputs(body, stdout);
  return code;
}

int main(int argc, char **argv) {
  if (!getenv("CNI_COMMAND") || argc > 1) run_node(argv, NULL);
  struct buf input = {0};
  if (read_all(0, &input) < 0) run_node(argv, NULL);
  int code = hand_over(&input);
  if (code < 0) run_node(argv, &input);
  return code;
}
