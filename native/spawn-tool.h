// Starting a host tool for the Node addon: see spawn-tool.c.
#ifndef PIPEWRIGHT_SPAWN_TOOL_H
#define PIPEWRIGHT_SPAWN_TOOL_H
#include <node_api.h>

napi_value js_spawn_tool(napi_env env, napi_callback_info info);
napi_value js_signal_tool(napi_env env, napi_callback_info info);
#endif
