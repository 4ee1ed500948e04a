import { readFileSync } from 'node:fs';

/** rac's version, from package.json. */
export const RAC_VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string })
  .version;
