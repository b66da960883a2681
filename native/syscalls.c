/*
 * syscalls.node: two system calls Node does not offer.
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
 * Both throw Error("<call>: <reason>") on any other failure. Every N-API status is checked.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>

static void throw_errno(napi_env env, const char *call) {
  char msg[128];
  snprintf(msg, sizeof msg, "%s: %s", call, strerror(errno));
  napi_throw_error(env, NULL, msg);
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

static int export_fn(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  return napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn) == napi_ok &&
         napi_set_named_property(env, exports, name, fn) == napi_ok;
}

NAPI_MODULE_INIT() {
  if (!export_fn(env, exports, "setns", js_setns) || !export_fn(env, exports, "tryLock", js_try_lock)) {
    napi_throw_error(env, NULL, "syscalls.node: could not export its functions");
    return NULL;
  }
  return exports;
}
