import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    pool: 'forks',
    fileParallelism: true,
    // Most test time is spent waiting on mkfs/e2fsck/debugfs child processes and fsync, so two
    // workers keep even a 2-core machine busy (the suite budget is 10 minutes on 2 cores).
    maxWorkers: Math.max(2, availableParallelism()),
  },
});
