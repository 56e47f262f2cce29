// Worker entry for test/read/fuzz-worker.ts: loads the TypeScript module through tsx (a Worker
// does not inherit the loader hooks vitest or `--import tsx` installed in its parent).
import { workerData } from 'node:worker_threads';
import { tsImport } from 'tsx/esm/api';

await tsImport(workerData.entry, import.meta.url);
