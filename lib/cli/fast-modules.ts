/**
 * The fast commands' modules as ES modules: what slow-path.ts runs from source (tsx) and when a
 * bundle has no per-command script (code-cache.ts). Kept apart from fast-path.ts so that a
 * command's bundled script (scripts/bundle-cli.mjs) does not pull in the other commands.
 */
import type { FastCommandName, FastModule } from './fast-path.js';

export function loadFastModule(command: FastCommandName): Promise<FastModule> {
  switch (command) {
    case 'info':
      return import('./commands/info.js');
    case 'ls':
      return import('./commands/ls-run.js');
    case 'free':
      return import('./commands/free-output.js');
    case 'movedata':
      return import('./commands/movedata-run.js');
    case 'defrag':
      return import('./commands/defrag-run.js');
    case 'import':
      return import('./commands/import-run.js');
  }
}
