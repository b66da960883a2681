#!/bin/sh
# udhcpc event script used by `pipewright attach ... dhcp`. It runs inside the guest's network
# namespace but in the host's filesystem, so it only configures the interface and routes, and
# never touches /etc/resolv.conf. It writes the lease to $PIPEWRIGHT_LEASE_FILE for pipewright.
set -u
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface" scope global
    ip link set "$interface" up
    rm -f "$PIPEWRIGHT_LEASE_FILE"
    ;;
  bound|renew)
    prefix="${mask:-24}"
    if ! ip -4 addr show dev "$interface" | grep -q "inet $ip/$prefix "; then
      ip -4 addr flush dev "$interface" scope global
      ip addr add "$ip/$prefix" dev "$interface"
    fi
    gw=""
    if [ -n "${router:-}" ]; then
      set -- $router
      gw="$1"
      # The attachment's --metric, when it has one: lowest wins among the guest's default routes.
      ip route replace default via "$gw" dev "$interface" ${PIPEWRIGHT_ROUTE_METRIC:+metric "$PIPEWRIGHT_ROUTE_METRIC"}
    fi
    printf '%s %s %s %s\n' "$ip" "$prefix" "$gw" "${lease:-0}" > "$PIPEWRIGHT_LEASE_FILE.tmp"
    mv "$PIPEWRIGHT_LEASE_FILE.tmp" "$PIPEWRIGHT_LEASE_FILE"
    ;;
esac
exit 0
