/*
 * Feeds nl_walk (native/nl-walk.h) the two datagrams of audit #3 and thousands of random and
 * mutated ones. Each is walked in a buffer of exactly its length, so ASan reports any read past
 * it, and again in one 64 KiB buffer reused as syscalls.c's recv does (stale bytes beyond the
 * datagram). Built with -fsanitize=address,undefined by test/unit/netlink-walk.test.ts.
 * Exit 0: every walk stayed in bounds and found what the kernel's own datagrams hold; otherwise a
 * sanitizer report, or one line naming the case that broke.
 * Usage: nl-walk-fuzz [rounds [seed]]
 */
#include <stdio.h>
#include <stdlib.h>
#include <linux/rtnetlink.h>
#include "../nl-walk.h"

enum { RECV_BUF = 65536, MAX_DATAGRAM = 1024, SEQ = 7 };

static uint64_t rng;
static uint32_t next_random(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)(rng >> 32);
}

static unsigned char *reused;
static unsigned long walks;

static void fail(const char *what, size_t len, nl_walk_result r) {
  fprintf(stderr, "nl-walk-fuzz: %s (len %zu: whole %zu, last %d; seed state %llu)\n", what, len, r.whole, r.last,
          (unsigned long long)rng);
  exit(1);
}

/* Walks `bytes` both ways; checks what any walk must hold and returns the result. */
static nl_walk_result walk(const unsigned char *bytes, size_t len, uint32_t seq) {
  unsigned char *exact = malloc(len ? len : 1);
  if (!exact) exit(2);
  memcpy(exact, bytes, len);
  nl_walk_result r = nl_walk(exact, len, seq);
  free(exact);
  memcpy(reused, bytes, len);
  nl_walk_result again = nl_walk(reused, len, seq);
  walks += 2;
  if (r.whole > len || (r.whole != len && r.whole % NLMSG_ALIGNTO)) fail("whole past the datagram or unaligned", len, r);
  if (again.whole != r.whole || again.last != r.last) fail("the walk depends on bytes past the datagram", len, r);
  return r;
}

static void put_header(unsigned char *at, uint32_t len, uint16_t type, uint32_t seq) {
  struct nlmsghdr h = {.nlmsg_len = len, .nlmsg_type = type, .nlmsg_seq = seq};
  memcpy(at, &h, sizeof h);
}

/* The audit's pair: a fake header at offset 20 of a 64-byte datagram, then a 17-byte message. */
static void audit_pair(void) {
  unsigned char first[64] = {0}, second[17] = {0};
  put_header(first, 20, RTM_NEWLINK, 1);
  put_header(first + 20, 0x7ffffff0, NLMSG_ERROR, SEQ);
  put_header(second, 17, RTM_NEWLINK, 1);
  /* Both walked first: in the old walk, the second reads the first's stale fake header. */
  nl_walk_result r1 = walk(first, sizeof first, SEQ), r2 = walk(second, sizeof second, SEQ);
  if (r1.whole != 20 || r1.last) fail("audit datagram 1", sizeof first, r1);
  if (r2.whole != 17 || r2.last) fail("audit datagram 2", sizeof second, r2);
}

/*
 * A datagram as the kernel writes it: messages of random sizes, each padded (the last one's
 * padding absent at random), ending at random in the answer to SEQ. Its length; *ends tells.
 */
static size_t kernel_datagram(unsigned char *out, int *ends) {
  size_t len = 0;
  int count = 1 + (int)(next_random() % 6);
  *ends = 0;
  for (int i = 0; i < count; i++) {
    uint32_t body = next_random() % 120, msg = (uint32_t)NLMSG_HDRLEN + body;
    int last = i == count - 1, end = last && next_random() % 2;
    uint16_t type = end ? (next_random() % 2 ? NLMSG_ERROR : NLMSG_DONE) : RTM_NEWLINK;
    /* Earlier requests' late answers carry another seq, and may be errors. */
    if (!end && next_random() % 4 == 0) type = NLMSG_ERROR;
    put_header(out + len, msg, type, end || type != NLMSG_ERROR ? SEQ : SEQ - 1);
    for (uint32_t b = 0; b < body; b++) out[len + NLMSG_HDRLEN + b] = (unsigned char)next_random();
    len += last && next_random() % 2 ? msg : NLMSG_ALIGN(msg);
    *ends = end;
  }
  return len;
}

static const uint32_t EDGES[] = {0, 1, 15, 16, 17, 19, 20, 21, 0x7ffffff0, 0x7fffffff, 0x80000000, 0xfffffffc, 0xfffffffd, 0xffffffff};

/* Breaks a datagram: a length field set to an edge, a byte flipped, the tail cut. */
static size_t mutate(unsigned char *d, size_t len) {
  for (int n = 1 + (int)(next_random() % 4); n > 0 && len > 0; n--) {
    size_t at = next_random() % len;
    switch (next_random() % 4) {
      case 0: {
        size_t field = at & ~(size_t)3;
        uint32_t pick = next_random() % (sizeof EDGES / sizeof *EDGES + 3);
        /* Past the edges: the bytes left from this field on, one less, one more. */
        uint32_t v = pick < sizeof EDGES / sizeof *EDGES ? EDGES[pick] : (uint32_t)(len - field) + pick - 15;
        if (field + 4 <= len) memcpy(d + field, &v, 4);
        break;
      }
      case 1: d[at] ^= (unsigned char)(1 + next_random() % 255); break;
      case 2: len = at; break;
      default: d[at] = (unsigned char)next_random();
    }
  }
  return len;
}

int main(int argc, char **argv) {
  long rounds = argc > 1 ? strtol(argv[1], NULL, 10) : 4000;
  rng = argc > 2 ? strtoull(argv[2], NULL, 10) | 1 : 0x9e3779b97f4a7c15ull;
  reused = calloc(1, RECV_BUF);
  if (!reused) return 2;
  audit_pair();
  unsigned char d[MAX_DATAGRAM];
  for (long i = 0; i < rounds; i++) {
    int ends;
    size_t len = kernel_datagram(d, &ends);
    nl_walk_result r = walk(d, len, SEQ);
    if (r.whole != len || r.last != ends) fail("a kernel datagram misread", len, r);
    walk(d, mutate(d, len), SEQ);
    len = next_random() % MAX_DATAGRAM;
    for (size_t b = 0; b < len; b++) d[b] = (unsigned char)next_random();
    walk(d, len, SEQ);
  }
  free(reused);
  printf("nl-walk-fuzz: %lu walks, all within their datagrams\n", walks);
  return 0;
}
