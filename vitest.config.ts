import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Root tests share loop devices, mounts and two cores: one file at a time.
    fileParallelism: false,
    pool: 'forks',
    // Real builds and boots under software emulation: each has its own, tighter timeouts inside.
    testTimeout: 900_000,
    hookTimeout: 600_000,
    clearMocks: true,
    restoreMocks: true,
  },
});
