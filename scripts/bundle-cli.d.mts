/** Types for scripts/bundle-cli.mjs (imported by the CLI tests). */
export interface BundleCliOptions {
  /** Output file (default dist/cli.js). */
  outfile?: string;
  sourcemap?: boolean;
  /** esbuild log level (default 'warning'). */
  logLevel?: 'silent' | 'error' | 'warning' | 'info' | 'debug' | 'verbose';
}
/** Bundle lib/cli/main.ts into one executable ESM file; resolves to its path. */
export function bundleCli(options?: BundleCliOptions): Promise<string>;
