import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['packages/*/test/**/*.test.ts'],
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts', 'test/fault/**/*.test.ts', 'test/deploy/**/*.test.ts'],
          globalSetup: ['test/harness/global-setup.ts'],
          sequence: { groupOrder: 1 },
          testTimeout: 60_000,
          hookTimeout: 60_000,
          // Each file starts real processes; two cores do not run many of them well at once.
          maxWorkers: 2,
        },
      },
    ],
  },
});
