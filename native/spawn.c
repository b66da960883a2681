/*
 * Starting a host tool for the Node addon (syscalls.node):
 *
 *   spawnTool(path, argv, toolPath, onExit) -> [pid, stdin, stdout, stderr]
 *                                    runs the executable at `path` with `argv` (argv[0] included)
 *                                    through posix_spawn, which the C library makes with
 *                                    CLONE_VM | CLONE_VFORK: nothing of Node's memory is copied,
 *                                    where Node's own spawn forks it (~0.7 ms for a CLI's 45 MB, and
 *                                    a copy-on-write fault for each page the parent touches after)
 *                                    and waits for the child's exec on a pipe. The child gets the
 *                                    process's environment with PATH set to `toolPath`, every
 *                                    signal at its default and none blocked, and only fds 0-2:
 *                                    pipes whose other ends are returned (close-on-exec, for
 *                                    net.Socket). onExit(code, signal) is called on the event loop
 *                                    once the process ended (its pidfd turned readable; it is then
 *                                    reaped): code is the exit status or -1, signal the signal's
 *                                    number or 0. Throws Error("spawn <path>: <reason>") with the
 *                                    errno's name as its code when the tool cannot be started.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>
#include "spawn.h"

extern char **environ;

enum { MAX_ARGS = 256, MAX_STRING = 65536 };

/* One started tool whose end is awaited. */
typedef struct {
  uv_poll_t poll;
  int pidfd;
  napi_env env;
  napi_ref on_exit;
  napi_async_context async;
} tool;

static void throw_spawn(napi_env env, const char *path, int error) {
  char msg[512];
  snprintf(msg, sizeof msg, "spawn %s: %s", path, strerror(error));
  napi_throw_error(env, strerrorname_np(error), msg);
}

/* A JS string as a new C string (freed by the caller); NULL with a TypeError thrown otherwise. */
static char *c_string_of(napi_env env, napi_value v) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok || len > MAX_STRING) return NULL;
  char *s = malloc(len + 1);
  if (s && napi_get_value_string_utf8(env, v, s, len + 1, &len) != napi_ok) {
    free(s);
    return NULL;
  }
  return s;
}

static void free_strings(char **list) {
  if (!list) return;
  for (char **p = list; *p; p++) free(*p);
  free(list);
}

/* argv as a NULL-ended array of C strings, or NULL. */
static char **strings_of(napi_env env, napi_value array) {
  uint32_t n = 0;
  bool is_array = false;
  if (napi_is_array(env, array, &is_array) != napi_ok || !is_array || napi_get_array_length(env, array, &n) != napi_ok || n == 0 ||
      n > MAX_ARGS)
    return NULL;
  char **list = calloc((size_t)n + 1, sizeof *list);
  for (uint32_t i = 0; list && i < n; i++) {
    napi_value item;
    if (napi_get_element(env, array, i, &item) != napi_ok || !(list[i] = c_string_of(env, item))) {
      free_strings(list);
      return NULL;
    }
  }
  return list;
}

/* The process's environment with PATH replaced by `path_value` (a NULL-ended array; the strings
   but the new PATH are borrowed from environ: free only the array and that one). */
static char **environment_with(const char *path_value, char **path_entry) {
  size_t n = 0;
  while (environ[n]) n++;
  char **env = calloc(n + 2, sizeof *env);
  if (!env || asprintf(path_entry, "PATH=%s", path_value) < 0) {
    free(env);
    return NULL;
  }
  size_t k = 0;
  env[k++] = *path_entry;
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], "PATH=", 5) != 0) env[k++] = environ[i];
  return env;
}

/* Three pipes: the child's ends on 0, 1, 2; the parent's close-on-exec. -1 with errno set. */
static int make_pipes(int fds[3][2]) {
  for (int i = 0; i < 3; i++) {
    if (pipe2(fds[i], O_CLOEXEC) != 0) {
      int saved = errno;
      for (int j = 0; j < i; j++) close(fds[j][0]), close(fds[j][1]);
      errno = saved;
      return -1;
    }
  }
  return 0;
}

/* posix_spawn with the child's stdio on the pipes, signals at their defaults, fds 3 and up closed. */
static int start(const char *path, char **argv, char **env, int fds[3][2], pid_t *pid) {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  /* stdin is read from the first pipe's read end; stdout and stderr written to the others' write ends. */
  posix_spawn_file_actions_adddup2(&actions, fds[0][0], 0);
  posix_spawn_file_actions_adddup2(&actions, fds[1][1], 1);
  posix_spawn_file_actions_adddup2(&actions, fds[2][1], 2);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  int error = posix_spawn(pid, path, &actions, &attr, argv, env);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  return error;
}

static void on_closed(uv_handle_t *handle) {
  tool *t = handle->data;
  close(t->pidfd);
  napi_delete_reference(t->env, t->on_exit);
  napi_async_destroy(t->env, t->async);
  free(t);
}

/* The pidfd turned readable: the process ended. It is reaped and onExit called. */
static void on_ended(uv_poll_t *handle, int status, int events) {
  (void)status, (void)events;
  tool *t = handle->data;
  siginfo_t info = {0};
  if (waitid(P_PIDFD, (id_t)t->pidfd, &info, WEXITED | WNOHANG) != 0 || info.si_pid == 0) return;
  uv_poll_stop(&t->poll);
  napi_handle_scope scope;
  if (napi_open_handle_scope(t->env, &scope) == napi_ok) {
    napi_value cb, recv, args[2];
    int code = info.si_code == CLD_EXITED ? info.si_status : -1;
    int signal = info.si_code == CLD_EXITED ? 0 : info.si_status;
    if (napi_get_reference_value(t->env, t->on_exit, &cb) == napi_ok && napi_get_global(t->env, &recv) == napi_ok &&
        napi_create_int32(t->env, code, &args[0]) == napi_ok && napi_create_int32(t->env, signal, &args[1]) == napi_ok)
      napi_make_callback(t->env, t->async, recv, cb, 2, args, NULL);
    napi_close_handle_scope(t->env, scope);
  }
  uv_close((uv_handle_t *)&t->poll, on_closed);
}

/* Watches the started process's pidfd on the loop; false (the process is left to init) on failure. */
static bool watch_end(napi_env env, pid_t pid, napi_value on_exit) {
  uv_loop_t *loop;
  napi_value name;
  tool *t = calloc(1, sizeof *t);
  if (!t) return false;
  t->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (t->pidfd < 0 || napi_get_uv_event_loop(env, &loop) != napi_ok || napi_create_reference(env, on_exit, 1, &t->on_exit) != napi_ok) {
    if (t->pidfd >= 0) close(t->pidfd);
    free(t);
    return false;
  }
  if (napi_create_string_utf8(env, "pipewright:tool", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, NULL, name, &t->async) != napi_ok || uv_poll_init(loop, &t->poll, t->pidfd) != 0) {
    napi_delete_reference(env, t->on_exit);
    close(t->pidfd);
    free(t);
    return false;
  }
  t->env = env;
  t->poll.data = t;
  uv_poll_start(&t->poll, UV_READABLE, on_ended);
  return true;
}

/* [pid, stdin, stdout, stderr] as a JS array. */
static napi_value result_of(napi_env env, pid_t pid, int fds[3][2]) {
  napi_value result, v;
  int32_t values[4] = {pid, fds[0][1], fds[1][0], fds[2][0]};
  if (napi_create_array_with_length(env, 4, &result) != napi_ok) return NULL;
  for (uint32_t i = 0; i < 4; i++)
    if (napi_create_int32(env, values[i], &v) != napi_ok || napi_set_element(env, result, i, v) != napi_ok) return NULL;
  return result;
}

napi_value js_spawn_tool(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value args[4], result = NULL;
  napi_valuetype fn_type = napi_undefined;
  char *path = NULL, *tool_path = NULL, *path_entry = NULL, **argv = NULL, **env_list = NULL;
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc < 4 || !(path = c_string_of(env, args[0])) ||
      !(argv = strings_of(env, args[1])) || !(tool_path = c_string_of(env, args[2])) ||
      napi_typeof(env, args[3], &fn_type) != napi_ok || fn_type != napi_function) {
    napi_throw_type_error(env, NULL, "spawnTool(path, argv, toolPath, onExit) takes a path, 1-256 strings, a PATH and a function");
    goto done;
  }
  int fds[3][2];
  pid_t pid;
  if (!(env_list = environment_with(tool_path, &path_entry)) || make_pipes(fds) != 0) {
    throw_spawn(env, path, errno);
    goto done;
  }
  int error = start(path, argv, env_list, fds, &pid);
  /* The child's ends are its own now (or no child was made). */
  close(fds[0][0]), close(fds[1][1]), close(fds[2][1]);
  if (error == 0 && !watch_end(env, pid, args[3])) {
    /* Nothing would report its end: it is stopped and reaped here. */
    error = errno ? errno : ENOMEM;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
  } else if (error == 0 && !(result = result_of(env, pid, fds))) {
    error = ENOMEM;
    kill(pid, SIGKILL); /* its watch reaps it */
  }
  if (!result) {
    close(fds[0][1]), close(fds[1][0]), close(fds[2][0]);
    throw_spawn(env, path, error);
  }
done:
  free(path), free(tool_path), free(path_entry), free(env_list);
  free_strings(argv);
  return result;
}
