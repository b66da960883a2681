/*
 * The walk over one rtnetlink datagram: no system calls, so native/test/nl-walk-fuzz.c runs it
 * under ASan and UBSan. The kernel writes messages back to back, each nlmsg_len long and padded
 * to 4 bytes; a datagram that breaks that rule is not the kernel's, and the walk must never read
 * past `len` over it (NLMSG_NEXT's unsigned arithmetic wraps on an unaligned last message: audit #3).
 */
#ifndef PIPEWRIGHT_NL_WALK_H
#define PIPEWRIGHT_NL_WALK_H
#include <linux/netlink.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct {
  /* Bytes of whole messages at the start (with their padding, when the datagram holds it). */
  size_t whole;
  /* One of them is the ack, error or NLMSG_DONE that ends the answer to the request. */
  int last;
} nl_walk_result;

/* The whole messages of a datagram, up to and including the end of the answer to `seq`. */
static inline nl_walk_result nl_walk(const void *datagram, size_t len, uint32_t seq) {
  const unsigned char *bytes = datagram;
  nl_walk_result r = {0, 0};
  while (len - r.whole >= sizeof(struct nlmsghdr)) {
    size_t remaining = len - r.whole;
    struct nlmsghdr h;
    memcpy(&h, bytes + r.whole, sizeof h);
    if (h.nlmsg_len < sizeof h || h.nlmsg_len > remaining) break;
    size_t padded = ((size_t)h.nlmsg_len + NLMSG_ALIGNTO - 1) & ~(size_t)(NLMSG_ALIGNTO - 1);
    r.whole += padded < remaining ? padded : remaining;
    if (h.nlmsg_seq == seq && (h.nlmsg_type == NLMSG_ERROR || h.nlmsg_type == NLMSG_DONE)) {
      r.last = 1;
      break;
    }
  }
  return r;
}

#endif
