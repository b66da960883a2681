/*
 * pipewright-mount: puts a host directory into a running container's mount namespace, or takes
 * it out. Node cannot setns() into a mount namespace (it is multithreaded); this single-threaded
 * helper can. The new mount API does the work: the host path is cloned as a detached mount while
 * still in the host's namespace, given its attributes (nosuid, nodev, private propagation, and
 * read-only if asked), then moved onto the target inside.
 *
 *   pipewright-mount prepare <pid> <container-path> [mkdir]   prints the path with symlinks resolved
 *   pipewright-mount mount   <pid> <host-path> <container-path> [ro]
 *   pipewright-mount unmount <pid> <container-path>
 *   pipewright-mount copyup  <pid> <container-path> <host-dir>
 *
 * copyup is Docker's copy-up of an image directory into a fresh volume, done from inside the
 * container: the host directory is opened first, then the container's path is opened with every
 * symlink resolved in the container's root (openat2 RESOLVE_IN_ROOT, no magic links), and the tree
 * is walked without following any link. A container that swaps a directory for a symlink to a
 * host path gets at most its own files. Directories, regular files and symlinks are copied with
 * owner, mode and times; device nodes, fifos and sockets are not (the volume is mounted nodev).
 *
 * The argument list is exact: an unknown word (say "readonly") is a usage error, never a
 * read-write mount. The container is entered through a pidfd, so a pid reused between the
 * caller's check and here cannot send the mount elsewhere. Paths are resolved inside the
 * container, after setns: a symlink in the container can never point pipewright at a host path.
 * Exit 0 on success; one line on stderr and exit 1 on failure, 2 on a usage error.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "io.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif

/* A tree deeper than this is refused (each level holds two fds open). */
#define MAX_DEPTH 200

static const char *USAGE =
    "usage: pipewright-mount prepare <pid> <container-path> [mkdir] | mount <pid> <host-path> <container-path> [ro] | unmount <pid> <container-path>";

static int fail(const char *what, const char *arg) {
  if (errno == ENOSYS) {
    fprintf(stderr, "pipewright-mount: %s: this kernel lacks the new mount API (Linux 5.12 or newer is needed)\n", what);
  } else {
    fprintf(stderr, "pipewright-mount: %s %s: %s\n", what, arg, strerror(errno));
  }
  return 1;
}

static int usage(const char *why) {
  fprintf(stderr, "pipewright-mount: %s; %s\n", why, USAGE);
  return 2;
}

/* A pid is digits only, 1 to INT_MAX. */
static int parse_pid(const char *text, pid_t *pid) {
  if (!*text || strlen(text) > 10) return 0;
  for (const char *c = text; *c; c++) if (!isdigit((unsigned char)*c)) return 0;
  long v = strtol(text, NULL, 10);
  if (v <= 0 || v > INT_MAX) return 0;
  *pid = (pid_t)v;
  return 1;
}

static int absolute(const char *path) {
  return path[0] == '/' && strlen(path) < PATH_MAX;
}

static int enter_mnt_ns(pid_t pid) {
  char what[32];
  snprintf(what, sizeof what, "pid %d", (int)pid);
  int fd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) return fail("pidfd_open", what);
  int rc = setns(fd, CLONE_NEWNS);
  int saved = errno;
  close(fd);
  errno = saved;
  return rc < 0 ? fail("setns into the mount namespace of", what) : 0;
}

/* mkdir -p, component by component, inside the container; `path` is absolute. */
static int make_dirs(const char *path) {
  char buf[PATH_MAX];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(buf, 0755) < 0 && errno != EEXIST) return fail("mkdir", buf);
    *p = '/';
  }
  if (mkdir(buf, 0755) < 0 && errno != EEXIST) return fail("mkdir", buf);
  return 0;
}

static int do_prepare(pid_t pid, const char *target, int create) {
  char resolved[PATH_MAX];
  if (enter_mnt_ns(pid)) return 1;
  if (create && make_dirs(target)) return 1;
  if (!realpath(target, resolved)) return fail("resolve", target);
  puts(resolved);
  return 0;
}

static int do_mount(pid_t pid, const char *src, const char *target, int readonly) {
  int tree = (int)syscall(SYS_open_tree, AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
  if (tree < 0) return fail("open_tree", src);
  /* No set-uid programs or device nodes through the mount, and no propagation back to the host. */
  struct mount_attr attr = {
      .attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (readonly ? MOUNT_ATTR_RDONLY : 0),
      .propagation = MS_PRIVATE,
  };
  int rc = 1;
  if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0) fail("mount_setattr", src);
  else if (enter_mnt_ns(pid) == 0) {
    if (syscall(SYS_move_mount, tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0) fail("move_mount onto", target);
    else rc = 0;
  }
  close(tree);
  return rc;
}

static int do_unmount(pid_t pid, const char *target) {
  if (enter_mnt_ns(pid)) return 1;
  if (umount2(target, MNT_DETACH) < 0) return fail("umount", target);
  return 0;
}

/* Closes fd keeping errno: cleanup must not hide the error being reported. */
static void close_keep_errno(int fd) {
  int saved = errno;
  close(fd);
  errno = saved;
}

/* Owner, mode and times of `st` onto an open file or directory (chown first: it clears set-uid). */
static int copy_meta(int fd, const char *name, const struct stat *st) {
  struct timespec times[2] = {st->st_atim, st->st_mtim};
  if (fchown(fd, st->st_uid, st->st_gid) < 0 || fchmod(fd, st->st_mode & 07777) < 0 || futimens(fd, times) < 0) return fail("set owner, mode, times of", name);
  return 0;
}

static int copy_file(int src, int dst, const char *name) {
  /* O_NONBLOCK: an entry swapped for a fifo must not hang us; it is checked to be a file after open. */
  int in = openat(src, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (in < 0) return fail("open", name);
  struct stat st;
  if (fstat(in, &st) < 0 || !S_ISREG(st.st_mode)) {
    close(in);
    return 0; /* no longer a regular file: not copied */
  }
  int out = openat(dst, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (out < 0) {
    close_keep_errno(in);
    return fail("create", name);
  }
  char buf[65536];
  ssize_t n;
  int rc = 0;
  while (rc == 0 && (n = read(in, buf, sizeof buf)) != 0) {
    if (n < 0 || write_all(out, buf, (size_t)n) < 0) rc = fail("copy", name);
  }
  if (rc == 0) rc = copy_meta(out, name, &st);
  close(in);
  close(out);
  return rc;
}

static int copy_link(int src, int dst, const char *name, const struct stat *st) {
  char target[PATH_MAX];
  ssize_t n = readlinkat(src, name, target, sizeof target - 1);
  if (n < 0) return fail("readlink", name);
  target[n] = '\0';
  struct timespec times[2] = {st->st_atim, st->st_mtim};
  if (symlinkat(target, dst, name) < 0) return fail("symlink", name);
  if (fchownat(dst, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0 || utimensat(dst, name, times, AT_SYMLINK_NOFOLLOW) < 0)
    return fail("set owner, times of", name);
  return 0;
}

static int copy_tree(int src, int dst, int depth);

static int copy_dir(int src, int dst, const char *name, int depth) {
  int in = openat(src, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (in < 0) return fail("open", name);
  int rc = 1, out = -1;
  struct stat st;
  if (fstat(in, &st) < 0) fail("stat", name);
  else if (mkdirat(dst, name, 0700) < 0) fail("mkdir", name);
  else if ((out = openat(dst, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) fail("open", name);
  else if (copy_tree(in, out, depth + 1) == 0) rc = copy_meta(out, name, &st);
  close(in);
  if (out >= 0) close(out);
  return rc;
}

/* Copies what directory fd `src` holds into directory fd `dst`, never following a link. */
static int copy_tree(int src, int dst, int depth) {
  if (depth > MAX_DEPTH) {
    errno = ELOOP;
    return fail("copy", "(a tree deeper than 200 levels)");
  }
  int fd = dup(src);
  DIR *dir = fd < 0 ? NULL : fdopendir(fd);
  if (!dir) {
    if (fd >= 0) close_keep_errno(fd);
    return fail("read", "a directory");
  }
  int rc = 0;
  struct dirent *e;
  while (rc == 0 && (e = readdir(dir)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    struct stat st;
    if (fstatat(src, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) rc = fail("stat", e->d_name);
    else if (S_ISDIR(st.st_mode)) rc = copy_dir(src, dst, e->d_name, depth);
    else if (S_ISREG(st.st_mode)) rc = copy_file(src, dst, e->d_name);
    else if (S_ISLNK(st.st_mode)) rc = copy_link(src, dst, e->d_name, &st);
  }
  closedir(dir);
  return rc;
}

static int do_copyup(pid_t pid, const char *target, const char *host_dir) {
  int dst = open(host_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dst < 0) return fail("open", host_dir);
  int rc = 1;
  if (enter_mnt_ns(pid) == 0) {
    /* After setns our root is the container's: resolve the path there, magic links refused. */
    struct open_how how = {.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
    int src = (int)syscall(SYS_openat2, AT_FDCWD, target, &how, sizeof how);
    if (src < 0) fail("open in the container", target);
    else {
      rc = copy_tree(src, dst, 0);
      close(src);
    }
  }
  close(dst);
  return rc;
}

/* `word` must be absent or exactly `want`: 1 when given, 0 when absent, -1 when anything else. */
static int flag(int argc, char **argv, int at, const char *want) {
  if (argc <= at) return 0;
  return strcmp(argv[at], want) == 0 ? 1 : -1;
}

int main(int argc, char **argv) {
  pid_t pid;
  if (argc < 3) return usage("too few arguments");
  const char *cmd = argv[1];
  if (!parse_pid(argv[2], &pid)) return usage("the pid must be a positive number");
  if (strcmp(cmd, "prepare") == 0 && (argc == 4 || argc == 5)) {
    int create = flag(argc, argv, 4, "mkdir");
    if (create < 0) return usage("prepare takes only the word mkdir after the path");
    if (!absolute(argv[3])) return usage("the container path must be absolute");
    return do_prepare(pid, argv[3], create);
  }
  if (strcmp(cmd, "mount") == 0 && (argc == 5 || argc == 6)) {
    int readonly = flag(argc, argv, 5, "ro");
    if (readonly < 0) return usage("mount takes only the word ro after the paths");
    if (!absolute(argv[3]) || !absolute(argv[4])) return usage("both paths must be absolute");
    return do_mount(pid, argv[3], argv[4], readonly);
  }
  if (strcmp(cmd, "unmount") == 0 && argc == 4) {
    if (!absolute(argv[3])) return usage("the container path must be absolute");
    return do_unmount(pid, argv[3]);
  }
  if (strcmp(cmd, "copyup") == 0 && argc == 5) {
    if (!absolute(argv[3]) || !absolute(argv[4])) return usage("both paths must be absolute");
    return do_copyup(pid, argv[3], argv[4]);
  }
  return usage("unknown command or wrong number of arguments");
}
