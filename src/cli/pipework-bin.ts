#!/usr/bin/env node
/** The `pipework` executable: pipework's argv, handed to pipewright as is. */
import { fail } from './context.js';
import { runPipework } from './pipework-run.js';

const verbose = process.env.PIPEWRIGHT_VERBOSE === '1';
runPipework(process.argv.slice(2), { verbose }).catch(fail);
