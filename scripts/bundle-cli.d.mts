/** Types for scripts/bundle-cli.mjs (imported by the CLI tests). */
export interface BundleCliOptions {
  /** Entry file (default dist/cli.js); its chunks go to a directory beside it named after it (dist/cli-chunks/). */
  outfile?: string;
  sourcemap?: boolean;
  /** Minify (default true; false for readable CPU profiles). */
  minify?: boolean;
  /** esbuild log level (default 'warning'). */
  logLevel?: 'silent' | 'error' | 'warning' | 'info' | 'debug' | 'verbose';
}
/**
 * Bundle lib/cli/main.ts into an executable ESM entry (outfile) and its chunks (`<outfile>-chunks/`),
 * and lib/cli/bin.ts into the CommonJS launcher beside it (`<outfile without .js>.cjs`, the package's
 * bin); resolves to the launcher's path.
 */
export function bundleCli(options?: BundleCliOptions): Promise<string>;
