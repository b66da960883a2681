/*
 * Kernel change events for the Node addon (syscalls.node):
 *
 *   nlWatch(protocol, groups, onEvent) -> id
 *                                    a netlink socket of `protocol` (NETLINK_ROUTE, NETLINK_NETFILTER)
 *                                    in the calling thread's network namespace, joined to the
 *                                    multicast `groups` (RTNLGRP_LINK, NFNLGRP_NFTABLES, ...), and
 *                                    watched by libuv on the event loop (no thread is held). Each
 *                                    time it turns readable its queue is drained and onEvent(n) is
 *                                    called with the number of kernel datagrams read; a queue that
 *                                    overflowed (ENOBUFS: events were lost) counts as one more.
 *                                    The messages are not parsed: a watcher only learns "something
 *                                    changed" and reads the state itself. Datagrams not from the
 *                                    kernel (sender portid != 0) are dropped.
 *   nlUnwatch(id) -> undefined       stops watching and closes the socket.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>
#include <linux/netlink.h>
#include "nl-events.h"

enum { MAX_GROUPS = 8, DRAIN_MAX = 4096, EVENT_RCVBUF = 1 << 20 };

typedef struct watch {
  uv_poll_t poll;
  int fd;
  napi_env env;
  napi_ref callback;
  napi_async_context async;
  struct watch *next;
} watch;

static watch *watches;

static void throw_errno_at(napi_env env, const char *call) {
  char msg[128];
  snprintf(msg, sizeof msg, "%s: %s", call, strerror(errno));
  napi_throw_error(env, strerrorname_np(errno), msg);
}

/* A socket joined to the groups; -1 with errno set. */
static int open_subscribed(int protocol, const uint32_t *groups, size_t n) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, protocol);
  if (fd < 0) return -1;
  struct sockaddr_nl self = {.nl_family = AF_NETLINK};
  int size = EVENT_RCVBUF;
  /* A larger queue loses fewer events in a burst (a whole ruleset flushed); a loss is reported anyway. */
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  if (bind(fd, (struct sockaddr *)&self, sizeof self) != 0) goto fail;
  for (size_t i = 0; i < n; i++) {
    if (setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &groups[i], sizeof groups[i]) != 0) goto fail;
  }
  return fd;
fail: {
  int saved = errno;
  close(fd);
  errno = saved;
  return -1;
}
}

/* Reads what is queued (up to DRAIN_MAX datagrams per wake-up, so a flood cannot hold the loop). */
static int32_t drain(int fd) {
  static char buf[8192];
  int32_t count = 0;
  for (int i = 0; i < DRAIN_MAX; i++) {
    struct sockaddr_nl from;
    socklen_t len = sizeof from;
    ssize_t n = recvfrom(fd, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC, (struct sockaddr *)&from, &len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == ENOBUFS) {
      count++;
      continue;
    }
    if (n < 0) break;
    if (len >= sizeof from && from.nl_pid == 0) count++;
  }
  return count;
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  (void)events;
  watch *w = handle->data;
  int32_t count = drain(w->fd) + (status < 0 ? 1 : 0);
  if (count == 0) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(w->env, &scope) != napi_ok) return;
  napi_value cb, recv, arg;
  if (napi_get_reference_value(w->env, w->callback, &cb) == napi_ok && napi_get_global(w->env, &recv) == napi_ok &&
      napi_create_int32(w->env, count, &arg) == napi_ok) {
    napi_make_callback(w->env, w->async, recv, cb, 1, &arg, NULL);
  }
  napi_close_handle_scope(w->env, scope);
}

static void on_closed(uv_handle_t *handle) {
  watch *w = handle->data;
  close(w->fd);
  napi_delete_reference(w->env, w->callback);
  napi_async_destroy(w->env, w->async);
  free(w);
}

napi_value js_nl_watch(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], name, result;
  int32_t protocol;
  uint32_t n = 0, groups[MAX_GROUPS];
  bool is_array = false;
  napi_valuetype type;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 ||
      napi_get_value_int32(env, argv[0], &protocol) != napi_ok || napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[1], &n) != napi_ok || n == 0 || n > MAX_GROUPS ||
      napi_typeof(env, argv[2], &type) != napi_ok || type != napi_function)
    goto usage;
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    if (napi_get_element(env, argv[1], i, &v) != napi_ok || napi_get_value_uint32(env, v, &groups[i]) != napi_ok) goto usage;
  }
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
    napi_throw_error(env, NULL, "nlWatch: no event loop");
    return NULL;
  }
  int fd = open_subscribed(protocol, groups, n);
  if (fd < 0) {
    throw_errno_at(env, "netlink subscribe");
    return NULL;
  }
  watch *w = calloc(1, sizeof *w);
  if (!w || napi_create_reference(env, argv[2], 1, &w->callback) != napi_ok ||
      napi_create_string_utf8(env, "pipewright:netlink-events", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, NULL, name, &w->async) != napi_ok || uv_poll_init(loop, &w->poll, fd) != 0) {
    close(fd);
    free(w);
    napi_throw_error(env, NULL, "nlWatch: could not set up the watch");
    return NULL;
  }
  w->fd = fd;
  w->env = env;
  w->poll.data = w;
  uv_poll_start(&w->poll, UV_READABLE, on_readable);
  w->next = watches;
  watches = w;
  if (napi_create_int32(env, fd, &result) != napi_ok) return NULL;
  return result;
usage:
  napi_throw_type_error(env, NULL, "nlWatch(protocol, groups, onEvent) takes an integer, 1-8 group numbers and a function");
  return NULL;
}

napi_value js_nl_unwatch(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t id;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_get_value_int32(env, argv[0], &id) != napi_ok) {
    napi_throw_type_error(env, NULL, "nlUnwatch(id) takes an integer");
    return NULL;
  }
  for (watch **p = &watches; *p; p = &(*p)->next) {
    if ((*p)->fd != id) continue;
    watch *w = *p;
    *p = w->next;
    uv_poll_stop(&w->poll);
    uv_close((uv_handle_t *)&w->poll, on_closed);
    return NULL;
  }
  return NULL; /* already stopped */
}
