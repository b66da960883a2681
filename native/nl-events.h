// Kernel change events (multicast netlink) for the Node addon: see nl-events.c.
#ifndef PIPEWRIGHT_NL_EVENTS_H
#define PIPEWRIGHT_NL_EVENTS_H
#include <node_api.h>

napi_value js_nl_watch(napi_env env, napi_callback_info info);
napi_value js_nl_unwatch(napi_env env, napi_callback_info info);
#endif
