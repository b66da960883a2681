/*
 * Starting a host tool for the Node addon (syscalls.node):
 *
 *   spawnTool(path, argv, toolPath, onExit) -> [id, stdin, stdout, stderr]
 *                                    runs the executable at `path` with `argv` (argv[0] included)
 *                                    through posix_spawn, which the C library makes with
 *                                    CLONE_VM | CLONE_VFORK: nothing of Node's memory is copied,
 *                                    where Node's own spawn forks it (~0.7 ms for a CLI's 45 MB, and
 *                                    a copy-on-write fault for each page the parent touches after)
 *                                    and waits for the child's exec on a pipe. The child gets the
 *                                    process's environment with PATH set to `toolPath`, its
 *                                    signals at their defaults (but glibc's two internal ones,
 *                                    which its posix_spawn leaves ignored) and none blocked, and
 *                                    only fds 0-2: pipes whose other ends are returned
 *                                    (close-on-exec, for net.Socket). onExit(code, signal) is
 *                                    called on the event loop once the process ended (its pidfd
 *                                    turned readable; it is then reaped): code is the exit status
 *                                    or -1, signal the signal's number or 0. Throws
 *                                    Error("spawn <path>: <reason>") with the errno's name as its
 *                                    code when the tool cannot be started; a TypeError for bad
 *                                    arguments.
 *   signalTool(id, signal) -> undefined
 *                                    sends `signal` through the tool's pidfd while it has not been
 *                                    reaped: never to another process that got its pid since.
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
#include "spawn-tool.h"

extern char **environ;

enum { MAX_ARGS = 256, MAX_STRING = 65536 };

/* One started tool whose end is awaited, in the list of those (by id) until it is reaped. */
typedef struct tool {
  uv_poll_t poll;
  int32_t id;
  int pidfd;
  napi_env env;
  napi_ref on_exit;
  napi_async_context async;
  struct tool *next;
} tool;

static tool *tools;
static int32_t last_id;

static void throw_spawn(napi_env env, const char *path, int error) {
  char msg[512];
  snprintf(msg, sizeof msg, "spawn %s: %s", path, strerror(error));
  napi_throw_error(env, strerrorname_np(error), msg);
}

/* A JS string without NUL as a new C string (freed by the caller), or NULL. */
static char *c_string_of(napi_env env, napi_value v) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok || len > MAX_STRING) return NULL;
  char *s = malloc(len + 1);
  if (s && (napi_get_value_string_utf8(env, v, s, len + 1, &len) != napi_ok || strlen(s) != len)) {
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
    *path_entry = NULL; /* asprintf leaves it undefined when it fails */
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

static void unlist(tool *t) {
  for (tool **p = &tools; *p; p = &(*p)->next) {
    if (*p != t) continue;
    *p = t->next;
    return;
  }
}

/* onExit(code, signal); an exception it throws is the process's uncaught exception, as Node's own. */
static void report_end(tool *t, int code, int signal) {
  napi_handle_scope scope;
  if (napi_open_handle_scope(t->env, &scope) != napi_ok) return;
  napi_value cb, recv, args[2], thrown;
  if (napi_get_reference_value(t->env, t->on_exit, &cb) == napi_ok && napi_get_global(t->env, &recv) == napi_ok &&
      napi_create_int32(t->env, code, &args[0]) == napi_ok && napi_create_int32(t->env, signal, &args[1]) == napi_ok &&
      napi_make_callback(t->env, t->async, recv, cb, 2, args, NULL) == napi_pending_exception &&
      napi_get_and_clear_last_exception(t->env, &thrown) == napi_ok)
    napi_fatal_exception(t->env, thrown);
  napi_close_handle_scope(t->env, scope);
}

/* The pidfd turned readable: the process ended. It is reaped (no longer signalled) and onExit called. */
static void on_ended(uv_poll_t *handle, int status, int events) {
  (void)status, (void)events;
  tool *t = handle->data;
  siginfo_t info = {0};
  int reaped = waitid(P_PIDFD, (id_t)t->pidfd, &info, WEXITED | WNOHANG);
  if (reaped == 0 && info.si_pid == 0) return; /* not yet (a spurious wake-up) */
  uv_poll_stop(&t->poll);
  unlist(t);
  if (reaped != 0) report_end(t, -1, 0); /* reaped by someone else: its status is lost */
  else if (info.si_code == CLD_EXITED) report_end(t, info.si_status, 0);
  else report_end(t, -1, info.si_status);
  uv_close((uv_handle_t *)&t->poll, on_closed);
}

/* Watches the started process's pidfd on the loop and lists it; 0, or an errno (nothing made). */
static int watch_end(napi_env env, pid_t pid, napi_value on_exit, int32_t *id) {
  uv_loop_t *loop;
  napi_value name;
  tool *t = calloc(1, sizeof *t);
  if (!t) return ENOMEM;
  t->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (t->pidfd < 0) {
    int error = errno;
    free(t);
    return error;
  }
  int error = EIO;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || napi_create_reference(env, on_exit, 1, &t->on_exit) != napi_ok) goto fail;
  if (napi_create_string_utf8(env, "pipewright:tool", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, NULL, name, &t->async) != napi_ok)
    goto unref;
  if ((error = -uv_poll_init(loop, &t->poll, t->pidfd)) != 0) {
    napi_async_destroy(env, t->async);
    goto unref;
  }
  t->env = env;
  t->poll.data = t;
  t->id = *id = ++last_id;
  t->next = tools;
  tools = t;
  uv_poll_start(&t->poll, UV_READABLE, on_ended);
  return 0;
unref:
  napi_delete_reference(env, t->on_exit);
fail:
  close(t->pidfd);
  free(t);
  return error;
}

/* [id, stdin, stdout, stderr] as a JS array. */
static napi_value result_of(napi_env env, int32_t id, int fds[3][2]) {
  napi_value result, v;
  int32_t values[4] = {id, fds[0][1], fds[1][0], fds[2][0]};
  if (napi_create_array_with_length(env, 4, &result) != napi_ok) return NULL;
  for (uint32_t i = 0; i < 4; i++)
    if (napi_create_int32(env, values[i], &v) != napi_ok || napi_set_element(env, result, i, v) != napi_ok) return NULL;
  return result;
}

/* The signal through the listed tool's pidfd; nothing once it was reaped (or for an unknown id). */
static void signal_tool(int32_t id, int signal) {
  for (tool *t = tools; t; t = t->next)
    if (t->id == id) syscall(SYS_pidfd_send_signal, t->pidfd, signal, NULL, 0);
}

napi_value js_signal_tool(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value args[2];
  int32_t id, signal;
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc < 2 || napi_get_value_int32(env, args[0], &id) != napi_ok ||
      napi_get_value_int32(env, args[1], &signal) != napi_ok) {
    napi_throw_type_error(env, NULL, "signalTool(id, signal) takes two integers");
    return NULL;
  }
  signal_tool(id, signal);
  return NULL;
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
  int32_t id = 0;
  if (error == 0 && (error = watch_end(env, pid, args[3], &id)) != 0) {
    /* Nothing would report its end: it is stopped and reaped here. */
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) continue;
  } else if (error == 0 && !(result = result_of(env, id, fds))) {
    error = ENOMEM;
    signal_tool(id, SIGKILL); /* its watch reaps it */
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
