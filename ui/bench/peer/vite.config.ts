import { defineConfig } from 'vite';

// Builds the peer page to ui/bench/peer/dist. The synthetic trees come from
// ../../src/bench.ts, outside this root: a build reads it directly, and the
// dev server is allowed to serve it.
export default defineConfig({
  base: './',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2020',
    chunkSizeWarningLimit: 4096,
  },
  server: { fs: { allow: ['..', '../../src'] } },
});
