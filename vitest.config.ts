import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Root tests share loop devices, mounts and two cores: one file at a time.
    fileParallelism: false,
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 600_000,
    clearMocks: true,
    restoreMocks: true,
  },
});
