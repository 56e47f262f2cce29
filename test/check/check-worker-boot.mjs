// Worker entry for test/check/check-worker.ts: loads the TypeScript module through tsx (a Worker
// does not inherit the loader hooks vitest installed in its parent).
import { workerData } from 'node:worker_threads';
import { tsImport } from 'tsx/esm/api';

await tsImport(workerData.entry, import.meta.url);
