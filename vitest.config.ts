import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // WebGPU (Dawn) reads VK_ICD_FILENAMES from the process environment: forks, not threads.
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    // Tests run the register-tiled kernels unless they force a variant or build their own tuner:
    // no timing in test runs, and no kernel-choice cache written under the home directory.
    env: { AGENTARK_AUTOTUNE: '0' },
  },
});
