// The console's bundle: one script and one stylesheet with fixed names under /console/, which
// the binary embeds (crates/tokengate/src/server/console.rs). No code splitting, no inline
// script (the console's Content-Security-Policy allows scripts from its origin only).
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/console/',
  build: {
    outDir: '../crates/tokengate/console-dist',
    emptyOutDir: true,
    assetsDir: '',
    modulePreload: { polyfill: false },
    cssCodeSplit: false,
    assetsInlineLimit: 0,
    sourcemap: false,
    rollupOptions: {
      output: {
        entryFileNames: 'console.js',
        assetFileNames: 'console[extname]',
        codeSplitting: false,
      },
    },
  },
});
