/*
 * pipewright-mount: puts a host directory into a running container's mount namespace, or takes
 * it out. Node cannot setns() into a mount namespace (it is multithreaded); this single-threaded
 * helper can. The new mount API does the work: the host path is cloned as a detached mount while
 * still in the host's namespace, made read-only if asked, then moved onto the target inside.
 *
 *   pipewright-mount prepare <pid> <container-path> [mkdir]   prints the path with symlinks resolved
 *   pipewright-mount mount   <pid> <host-path> <container-path> [ro]
 *   pipewright-mount unmount <pid> <container-path>
 *
 * Paths are resolved inside the container, after setns: a symlink in the container can never
 * point pipewright at a host path. Exit 0 on success; one line on stderr and exit 1 otherwise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int fail(const char *what, const char *arg) {
  fprintf(stderr, "pipewright-mount: %s %s: %s\n", what, arg, strerror(errno));
  return 1;
}

static int enter_mnt_ns(const char *pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%s/ns/mnt", pid);
  int ns = open(path, O_RDONLY | O_CLOEXEC);
  if (ns < 0) return fail("open", path);
  if (setns(ns, CLONE_NEWNS) < 0) return fail("setns", path);
  close(ns);
  return 0;
}

/* mkdir -p, component by component, inside the container. */
static int make_dirs(const char *path) {
  char buf[PATH_MAX];
  if (strlen(path) >= sizeof buf) { errno = ENAMETOOLONG; return fail("path", path); }
  strcpy(buf, path);
  for (char *p = buf + 1; ; p++) {
    if (*p == '/' || *p == '\0') {
      char saved = *p;
      *p = '\0';
      if (mkdir(buf, 0755) < 0 && errno != EEXIST) return fail("mkdir", buf);
      if (saved == '\0') return 0;
      *p = saved;
    }
  }
}

static int do_prepare(const char *pid, const char *target, int create) {
  char resolved[PATH_MAX];
  if (enter_mnt_ns(pid)) return 1;
  if (create && make_dirs(target)) return 1;
  if (!realpath(target, resolved)) return fail("resolve", target);
  puts(resolved);
  return 0;
}

static int do_mount(const char *pid, const char *src, const char *target, int readonly) {
  int tree = syscall(SYS_open_tree, AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
  if (tree < 0) return fail("open_tree", src);
  if (readonly) {
    struct mount_attr attr = { .attr_set = MOUNT_ATTR_RDONLY };
    if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0) return fail("mount_setattr", src);
  }
  if (enter_mnt_ns(pid)) return 1;
  if (syscall(SYS_move_mount, tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0) return fail("move_mount onto", target);
  return 0;
}

static int do_unmount(const char *pid, const char *target) {
  if (enter_mnt_ns(pid)) return 1;
  if (umount2(target, MNT_DETACH) < 0) return fail("umount", target);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 4 && strcmp(argv[1], "prepare") == 0) return do_prepare(argv[2], argv[3], argc > 4 && strcmp(argv[4], "mkdir") == 0);
  if (argc >= 5 && strcmp(argv[1], "mount") == 0) return do_mount(argv[2], argv[3], argv[4], argc > 5 && strcmp(argv[5], "ro") == 0);
  if (argc == 4 && strcmp(argv[1], "unmount") == 0) return do_unmount(argv[2], argv[3]);
  fprintf(stderr, "usage: pipewright-mount prepare <pid> <container-path> [mkdir] | mount <pid> <host-path> <container-path> [ro] | unmount <pid> <container-path>\n");
  return 2;
}
