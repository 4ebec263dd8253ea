import { defineConfig } from 'vite';
import { resolve } from 'node:path';

// The build lands in ui/dist, which crates/server/build.rs embeds into the
// perfpilot binary. bench.html is the flame graph render benchmark page; it
// is served by the same binary so the benchmark needs no other server.
export default defineConfig({
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2020',
    rollupOptions: {
      input: {
        main: resolve(__dirname, 'index.html'),
        bench: resolve(__dirname, 'bench.html'),
      },
    },
  },
  server: {
    proxy: { '/api': 'http://127.0.0.1:4040' },
  },
});
