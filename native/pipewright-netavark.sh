#!/bin/sh
# pipewright's netavark plugin, installed as `pipewright` in netavark's plugin directories
# (containers.conf netavark_plugin_dirs): netavark runs it with create, setup <netns>,
# teardown <netns> or info. It is the CLI (../bin/pipewright beside this file) in plugin mode.
exec "$(dirname "$(readlink -f "$0")")/../bin/pipewright" --netavark-plugin "$@"
