/*
 * A gratuitous ARP for the Node addon (syscalls.node):
 *
 *   announce(ifindex, mac, ipv4) -> undefined
 *                                    broadcasts on host link `ifindex` (a bridge) one ARP request
 *                                    of the RFC 5227 announcement form: sender and target address
 *                                    `ipv4` (4 bytes), sender MAC `mac` (6 bytes). Neighbours that
 *                                    hold an entry for the address take the new MAC at once.
 *
 * Why from the host: a Docker endpoint's MAC is new at each start (its IPAM asks for MACs) while
 * the pool hands back the same address, and Docker brings the container's interface up itself,
 * before the bridge port forwards, so the kernel's own announcement (arp_notify) is lost. The
 * bridge's other ports forward already: sent on the bridge, the announcement reaches them. A
 * frame the host sends is not learnt by the bridge, so its forwarding table is left as it is.
 * Node has no packet sockets, hence C.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if_arp.h>
#include "announce.h"

struct arp_frame {
  unsigned char dst[ETH_ALEN], src[ETH_ALEN];
  uint16_t ethertype;
  uint16_t hrd, pro;
  uint8_t hln, pln;
  uint16_t op;
  unsigned char sha[ETH_ALEN], spa[4], tha[ETH_ALEN], tpa[4];
} __attribute__((packed));

/* The bytes of a Buffer argument of exactly `len` bytes, or NULL (a TypeError is thrown). */
static const unsigned char *bytes_arg(napi_env env, napi_value v, size_t len) {
  void *data;
  size_t got;
  if (napi_get_buffer_info(env, v, &data, &got) != napi_ok || got != len) return NULL;
  return data;
}

static void fill_frame(struct arp_frame *f, const unsigned char *mac, const unsigned char *ip) {
  memset(f, 0, sizeof *f);
  memset(f->dst, 0xff, ETH_ALEN);
  memcpy(f->src, mac, ETH_ALEN);
  f->ethertype = htons(ETH_P_ARP);
  f->hrd = htons(ARPHRD_ETHER);
  f->pro = htons(ETH_P_IP);
  f->hln = ETH_ALEN;
  f->pln = 4;
  f->op = htons(ARPOP_REQUEST);
  memcpy(f->sha, mac, ETH_ALEN);
  memcpy(f->spa, ip, 4);
  memcpy(f->tpa, ip, 4);
}

/*
 * The process's one packet socket, made on first use (in the host's namespace: nothing runs inside
 * a guest's between calls) and kept: closing a packet socket waits for an RCU grace period
 * (synchronize_net in packet_release), 16 ms on a 2-core VM, which a Docker Join spent on the
 * daemon's event loop. Protocol 0: it sends only, and receives nothing meanwhile.
 */
static int packet_socket(void) {
  static int fd = -1;
  if (fd < 0) fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  return fd;
}

napi_value js_announce(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t ifindex;
  const unsigned char *mac = NULL, *ip = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc == 3 &&
      napi_get_value_int32(env, argv[0], &ifindex) == napi_ok) {
    mac = bytes_arg(env, argv[1], ETH_ALEN);
    ip = bytes_arg(env, argv[2], 4);
  }
  if (!mac || !ip || ifindex <= 0) {
    napi_throw_type_error(env, NULL, "announce(ifindex, mac, ipv4) takes an index, 6 bytes and 4 bytes");
    return NULL;
  }
  struct arp_frame frame;
  fill_frame(&frame, mac, ip);
  struct sockaddr_ll to = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ARP), .sll_ifindex = ifindex,
                           .sll_halen = ETH_ALEN};
  memset(to.sll_addr, 0xff, ETH_ALEN);
  int fd = packet_socket();
  int sent = fd >= 0 ? (int)sendto(fd, &frame, sizeof frame, 0, (struct sockaddr *)&to, sizeof to) : -1;
  if (sent != (int)sizeof frame) {
    if (sent >= 0) errno = EMSGSIZE;
    char msg[96];
    snprintf(msg, sizeof msg, "sending a gratuitous ARP: %s", strerror(errno));
    napi_throw_error(env, strerrorname_np(errno), msg);
  }
  return NULL;
}
