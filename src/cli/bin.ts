#!/usr/bin/env node
/** The `pipewright` executable when no startup snapshot is used (see src/cli/snapshot.ts). */
import { main } from './main.js';

await main(process.argv);
