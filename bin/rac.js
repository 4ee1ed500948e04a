#!/usr/bin/env node
// The `rac` command. An installed package runs its built JavaScript (dist/, made by `npm run build`
// when the package is packed); a checkout — which has src/ — runs the TypeScript sources through
// tsx's loader, so what runs is always the code you see (a stale dist/ is never used there).
import { existsSync } from 'node:fs';

if (existsSync(new URL('../src/cli/main.ts', import.meta.url))) {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
} else {
  await import('../dist/cli/main.js');
}
