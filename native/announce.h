// Gratuitous ARP for the Node addon: see announce.c.
#ifndef PIPEWRIGHT_ANNOUNCE_H
#define PIPEWRIGHT_ANNOUNCE_H
#include <node_api.h>

napi_value js_announce(napi_env env, napi_callback_info info);
#endif
