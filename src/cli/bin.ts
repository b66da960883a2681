#!/usr/bin/env node
/** The `pipewright` executable when no startup snapshot is used (see src/cli/snapshot.ts). */
import { enter } from './main.js';

await enter();
