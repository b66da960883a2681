/*
 * pipewright-mount: puts a host directory into a running container's mount namespace, or takes
 * it out. Node cannot setns() into a mount namespace (it is multithreaded); this single-threaded
 * helper can. The new mount API does the work: the host path is cloned as a detached mount while
 * still in the host's namespace, given its attributes (nosuid, nodev, private propagation, and
 * read-only if asked), then moved onto the target inside.
 *
 *   pipewright-mount prepare <pid>@<start> <container-path> [mkdir]   prints the path, symlinks resolved
 *   pipewright-mount mount   <pid>@<start> <host-path> <container-path> <dev>:<ino>|- [ro]
 *                            prints the host object's <dev>:<ino>
 *   pipewright-mount unmount <pid>@<start> <container-path>
 *   pipewright-mount copyup  <pid>@<start> <container-path> <host-dir>
 *
 * <start> is the process start time (/proc/<pid>/stat field 22) the caller checked: the helper
 * opens a pidfd, then compares the start time, so a pid reused in between is refused. The host
 * path is opened with no symlink followed in any component (openat2 RESOLVE_NO_SYMLINKS), its
 * identity compared with the one recorded at the first mount when given, and the clone is made
 * from that fd: what is mounted is exactly the object checked. unmount does not follow a symlink
 * in the last component (UMOUNT_NOFOLLOW); callers pass the target as resolved at mount time.
 * A guest whose mount namespace belongs to a user namespace of its own gets the mount with its
 * flags locked by the kernel (see lock_tree): its root cannot remount it rw or suid.
 *
 * copyup is Docker's copy-up of an image directory into a fresh volume, done from inside the
 * container: the host directory is opened first, then the container's path is opened with every
 * symlink resolved in the container's root (openat2 RESOLVE_IN_ROOT, no magic links), and the tree
 * is walked without following any link. A container that swaps a directory for a symlink to a
 * host path gets at most its own files. Directories, regular files and symlinks are copied with
 * owner, mode and times; device nodes, fifos and sockets are not (the volume is mounted nodev).
 * Holes stay holes (SEEK_DATA/SEEK_HOLE), and more than MAX_COPY bytes of data are refused.
 *
 * The argument list is exact: an unknown word (say "readonly") is a usage error, never a
 * read-write mount. The container is entered through a pidfd whose start time is checked, so a
 * pid reused after the caller's check cannot send the mount elsewhere. Paths are resolved inside the
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
#include <linux/nsfs.h>
#include <sys/ioctl.h>
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
/* Where the scratch namespace holds the tree before the copy that locks it (present on any host). */
#define SCRATCH "/tmp"
/* Copy-up writes at most this much data (4 GiB): a container cannot fill the state dir's disk. */
#define MAX_COPY (4ULL << 30)

static const char *USAGE =
    "usage: pipewright-mount prepare <pid>@<start> <container-path> [mkdir] | mount <pid>@<start> <host-path> <container-path> <dev>:<ino>|- [ro]"
    " | unmount <pid>@<start> <container-path> | copyup <pid>@<start> <container-path> <host-dir>";

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

/* The process to enter: its pid and the start time the caller saw. */
struct target_proc {
  pid_t pid;
  char start[24];
};

static int digits(const char *text, size_t max) {
  size_t n = strlen(text);
  if (n == 0 || n > max) return 0;
  for (const char *c = text; *c; c++) if (!isdigit((unsigned char)*c)) return 0;
  return 1;
}

/* "<pid>@<start>": a pid 1 to INT_MAX, a start time of digits only. */
static int parse_proc(const char *text, struct target_proc *p) {
  char pid[16];
  const char *at = strchr(text, '@');
  if (!at || (size_t)(at - text) >= sizeof pid) return 0;
  memcpy(pid, text, (size_t)(at - text));
  pid[at - text] = '\0';
  if (!digits(pid, 10) || !digits(at + 1, sizeof p->start - 1)) return 0;
  long v = strtol(pid, NULL, 10);
  if (v <= 0 || v > INT_MAX) return 0;
  p->pid = (pid_t)v;
  snprintf(p->start, sizeof p->start, "%s", at + 1);
  return 1;
}

static int absolute(const char *path) {
  return path[0] == '/' && strlen(path) < PATH_MAX;
}

/* Field 22 of /proc/<pid>/stat (the start time), counted after the ")" that ends the name. */
static int start_time(pid_t pid, char *out, size_t size) {
  char path[32], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  for (int field = 2; p && field < 22; field++) p = strchr(p + 1, ' ');
  if (!p) return -1;
  size_t len = strcspn(p + 1, " ");
  if (len == 0 || len >= size) return -1;
  memcpy(out, p + 1, len);
  out[len] = '\0';
  return 0;
}

/*
 * The guest's mount namespace, opened after its pidfd and before its start time is compared: if
 * the start time matches, both were opened on the process the caller checked.
 */
static int open_mnt_ns(const struct target_proc *proc) {
  char what[48], now[24], path[48];
  snprintf(what, sizeof what, "pid %d", (int)proc->pid);
  int pidfd = (int)syscall(SYS_pidfd_open, proc->pid, 0);
  if (pidfd < 0) return fail("pidfd_open", what), -1;
  snprintf(path, sizeof path, "/proc/%d/ns/mnt", (int)proc->pid);
  int ns = open(path, O_RDONLY | O_CLOEXEC);
  if (ns < 0) fail("open the mount namespace of", what);
  else if (start_time(proc->pid, now, sizeof now) < 0 || strcmp(now, proc->start) != 0) {
    fprintf(stderr, "pipewright-mount: pid %d is no longer the process started at %s; nothing done\n", (int)proc->pid, proc->start);
    close(ns);
    ns = -1;
  }
  close(pidfd);
  return ns;
}

static int enter_mnt_ns_fd(int ns) {
  if (setns(ns, CLONE_NEWNS) < 0) return fail("setns into", "the guest's mount namespace");
  return 0;
}

static int enter_mnt_ns(const struct target_proc *proc) {
  int ns = open_mnt_ns(proc);
  if (ns < 0) return 1;
  int rc = enter_mnt_ns_fd(ns);
  close(ns);
  return rc;
}

/* Closes fd keeping errno: cleanup must not hide the error being reported. */
static void close_keep_errno(int fd) {
  int saved = errno;
  close(fd);
  errno = saved;
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

static int do_prepare(const struct target_proc *proc, const char *target, int create) {
  char resolved[PATH_MAX];
  if (enter_mnt_ns(proc)) return 1;
  if (create && make_dirs(target)) return 1;
  if (!realpath(target, resolved)) return fail("resolve", target);
  puts(resolved);
  return 0;
}

/*
 * Opens the host path with no symlink in any component, and checks it is the object `expect`
 * ("<dev>:<ino>", or "-" for none); `id` gets the object's identity.
 */
static int open_source(const char *src, const char *expect, char *id, size_t size) {
  struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
  int fd = (int)syscall(SYS_openat2, AT_FDCWD, src, &how, sizeof how);
  if (fd < 0) {
    if (errno == ELOOP) fprintf(stderr, "pipewright-mount: host path %s now holds a symlink; refusing to mount it\n", src);
    return fd < 0 && errno == ELOOP ? -1 : (fail("open (no symlinks)", src), -1);
  }
  struct stat st;
  if (fstat(fd, &st) < 0) {
    fail("stat", src);
    close(fd);
    return -1;
  }
  snprintf(id, size, "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
  if (strcmp(expect, "-") != 0 && strcmp(expect, id) != 0) {
    fprintf(stderr, "pipewright-mount: host path %s is no longer what was first mounted (%s, now %s); refusing to mount it\n", src, expect, id);
    close(fd);
    return -1;
  }
  return fd;
}

/* The user namespace that owns mount namespace `ns` when it is not ours (-1 when it is, -2 on error). */
static int foreign_owner(int ns) {
  int owner = ioctl(ns, NS_GET_USERNS);
  struct stat theirs, ours;
  if (owner < 0 || fstat(owner, &theirs) < 0 || stat("/proc/self/ns/user", &ours) < 0) {
    fail("find the owner of", "the guest's mount namespace");
    if (owner >= 0) close(owner);
    return -2;
  }
  if (theirs.st_dev == ours.st_dev && theirs.st_ino == ours.st_ino) {
    close(owner);
    return -1;
  }
  return owner;
}

/*
 * A guest whose mount namespace belongs to a user namespace of its own is root there, and could
 * remount rw (or suid) what was moved in. The kernel locks a mount's flags (MNT_LOCK_READONLY,
 * _NOSUID, _NODEV) only when it copies a namespace into a less privileged user namespace. So the
 * tree goes into a private scratch namespace, that is copied into one the guest's user namespace
 * owns, and the locked copy is cloned out. This process is left in that user namespace, which
 * may enter the guest's mount namespace.
 */
static int lock_tree(int *tree, int owner) {
  if (unshare(CLONE_NEWNS) < 0) return fail("unshare", "a scratch mount namespace");
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) return fail("make private", "the scratch mount namespace");
  if (syscall(SYS_move_mount, *tree, "", AT_FDCWD, SCRATCH, MOVE_MOUNT_F_EMPTY_PATH) < 0) return fail("move_mount onto", SCRATCH);
  if (setns(owner, CLONE_NEWUSER) < 0) return fail("setns into", "the guest's user namespace");
  if (unshare(CLONE_NEWNS) < 0) return fail("unshare", "a mount namespace of the guest's user namespace");
  int locked = (int)syscall(SYS_open_tree, AT_FDCWD, SCRATCH, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
  if (locked < 0) return fail("open_tree", "the locked copy");
  close(*tree);
  *tree = locked;
  return 0;
}

/* The tree with its attributes, locked for a guest owning its mount namespace, moved onto the target. */
static int attach(int tree, int ns, const char *target) {
  int owner = foreign_owner(ns);
  if (owner == -2) return 1;
  int rc = owner >= 0 ? lock_tree(&tree, owner) : 0;
  if (owner >= 0) close(owner);
  if (rc == 0) rc = enter_mnt_ns_fd(ns);
  if (rc == 0 && syscall(SYS_move_mount, tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0) rc = fail("move_mount onto", target);
  close(tree);
  return rc;
}

static int do_mount(const struct target_proc *proc, const char *src, const char *target, const char *expect, int readonly) {
  char id[48];
  int source = open_source(src, expect, id, sizeof id);
  if (source < 0) return 1;
  int tree = (int)syscall(SYS_open_tree, source, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH);
  close_keep_errno(source);
  if (tree < 0) return fail("open_tree", src);
  /* No set-uid programs or device nodes through the mount, and no propagation back to the host. */
  struct mount_attr attr = {
      .attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (readonly ? MOUNT_ATTR_RDONLY : 0),
      .propagation = MS_PRIVATE,
  };
  if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0) {
    close_keep_errno(tree);
    return fail("mount_setattr", src);
  }
  int ns = open_mnt_ns(proc);
  if (ns < 0) {
    close(tree);
    return 1;
  }
  int rc = attach(tree, ns, target);
  close(ns);
  if (rc == 0) puts(id);
  return rc;
}

/* The last component is not followed: a container's symlink cannot aim the unmount elsewhere. */
static int do_unmount(const struct target_proc *proc, const char *target) {
  if (enter_mnt_ns(proc)) return 1;
  if (umount2(target, MNT_DETACH | UMOUNT_NOFOLLOW) < 0) return fail("umount", target);
  return 0;
}

/* Owner, mode and times of `st` onto an open file or directory (chown first: it clears set-uid). */
static int copy_meta(int fd, const char *name, const struct stat *st) {
  struct timespec times[2] = {st->st_atim, st->st_mtim};
  if (fchown(fd, st->st_uid, st->st_gid) < 0 || fchmod(fd, st->st_mode & 07777) < 0 || futimens(fd, times) < 0) return fail("set owner, mode, times of", name);
  return 0;
}

/* Data bytes copied so far by this copy-up, against MAX_COPY. */
static unsigned long long copied;

/* Bytes [pos, end) of `in` to the same place in `out`: copy_file_range, or read and write across filesystems. */
static int copy_extent(int in, int out, off_t pos, off_t end, const char *name) {
  char buf[65536];
  while (pos < end) {
    size_t want = (size_t)(end - pos);
    off_t at = pos;
    ssize_t n = copy_file_range(in, &at, out, &at, want, 0);
    if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP || errno == ENOSYS)) {
      n = pread(in, buf, want < sizeof buf ? want : sizeof buf, pos);
      if (n > 0 && (lseek(out, pos, SEEK_SET) < 0 || write_all(out, buf, (size_t)n) < 0)) n = -1;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("copy", name);
    if (n == 0) return 0; /* shrunk meanwhile: what is there is copied */
    pos += n;
    copied += (unsigned long long)n;
  }
  return 0;
}

/* Copies the data extents of `in` to `out` (holes stay holes), then sets the size. */
static int copy_data(int in, int out, off_t size, const char *name) {
  for (off_t pos = 0; pos < size;) {
    off_t data = lseek(in, pos, SEEK_DATA);
    if (data < 0 && errno == ENXIO) break; /* only a hole is left */
    off_t hole = data < 0 ? -1 : lseek(in, data, SEEK_HOLE);
    if (hole < 0) return fail("seek in", name);
    if (copied + (unsigned long long)(hole - data) > MAX_COPY) {
      fprintf(stderr, "pipewright-mount: copy-up stops at %s: over %llu GiB of data; mount with :nocopy\n", name, MAX_COPY >> 30);
      return 1;
    }
    if (copy_extent(in, out, data, hole, name)) return 1;
    pos = hole;
  }
  if (ftruncate(out, size) < 0) return fail("set the size of", name);
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
  int rc = copy_data(in, out, st.st_size, name);
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

static int do_copyup(const struct target_proc *proc, const char *target, const char *host_dir) {
  int dst = open(host_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dst < 0) return fail("open", host_dir);
  int rc = 1;
  if (enter_mnt_ns(proc) == 0) {
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

/* "-" or "<dev>:<ino>" in digits. */
static int identity_arg(const char *text) {
  const char *colon = strchr(text, ':');
  if (strcmp(text, "-") == 0) return 1;
  if (!colon || colon == text || !colon[1] || strlen(text) > 41) return 0;
  for (const char *c = text; *c; c++) if (c != colon && !isdigit((unsigned char)*c)) return 0;
  return 1;
}

int main(int argc, char **argv) {
  struct target_proc proc;
  if (argc < 3) return usage("too few arguments");
  const char *cmd = argv[1];
  if (!parse_proc(argv[2], &proc)) return usage("the process must be <pid>@<start time>, both numbers");
  if (strcmp(cmd, "prepare") == 0 && (argc == 4 || argc == 5)) {
    int create = flag(argc, argv, 4, "mkdir");
    if (create < 0) return usage("prepare takes only the word mkdir after the path");
    if (!absolute(argv[3])) return usage("the container path must be absolute");
    return do_prepare(&proc, argv[3], create);
  }
  if (strcmp(cmd, "mount") == 0 && (argc == 6 || argc == 7)) {
    int readonly = flag(argc, argv, 6, "ro");
    if (readonly < 0) return usage("mount takes only the word ro after the identity");
    if (!absolute(argv[3]) || !absolute(argv[4])) return usage("both paths must be absolute");
    if (!identity_arg(argv[5])) return usage("the identity must be <dev>:<ino> or -");
    return do_mount(&proc, argv[3], argv[4], argv[5], readonly);
  }
  if (strcmp(cmd, "unmount") == 0 && argc == 4) {
    if (!absolute(argv[3])) return usage("the container path must be absolute");
    return do_unmount(&proc, argv[3]);
  }
  if (strcmp(cmd, "copyup") == 0 && argc == 5) {
    if (!absolute(argv[3]) || !absolute(argv[4])) return usage("both paths must be absolute");
    return do_copyup(&proc, argv[3], argv[4]);
  }
  return usage("unknown command or wrong number of arguments");
}
