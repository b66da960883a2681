/*
 * netns.node: setns(2) for Node, so a netlink socket can be opened inside a guest's network
 * namespace. A socket belongs to the namespace of the thread that created it; pipewright enters
 * the guest's namespace on the main thread, creates the socket, and returns at once. Switching
 * the network namespace of one thread is allowed in a multithreaded process (unlike mount).
 *
 *   setns(fd, nstype) -> undefined, throws Error("setns: <reason>")
 */
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

static napi_value js_setns(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd = -1, nstype = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int32(env, argv[1], &nstype) != napi_ok) {
    napi_throw_type_error(env, NULL, "setns(fd, nstype) takes two integers");
    return NULL;
  }
  if (setns(fd, nstype) != 0) {
    char msg[128];
    snprintf(msg, sizeof msg, "setns: %s", strerror(errno));
    napi_throw_error(env, NULL, msg);
  }
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "setns", NAPI_AUTO_LENGTH, js_setns, NULL, &fn);
  napi_set_named_property(env, exports, "setns", fn);
  return exports;
}
