import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Every test spawns real processes; bound each one so a hang fails instead of stalling CI.
    testTimeout: 60_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Two cores: running many engines at once would only measure contention.
    maxWorkers: 2,
    fileParallelism: true,
  },
});
