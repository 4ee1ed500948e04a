/**
 * Settings against a manifest: what a resumed `rac trace` / `rac eval` compares with the manifest
 * its interrupted run left (`settingsDiff`), and the content hash `rac run` names each step's
 * output by (`hashOf`), so a rerun finds what is done.
 */
import { createHash } from 'node:crypto';

/** JSON with object keys sorted at every depth: equal settings give equal text whatever their key order. */
export function stableJson(x: unknown): string {
  if (Array.isArray(x)) return `[${x.map(stableJson).join(',')}]`;
  if (x && typeof x === 'object') {
    return `{${Object.keys(x)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableJson((x as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(x);
}

export interface SettingsDiffOptions {
  /** Levels of objects to descend into (default: all); below, a value is compared whole. */
  depth?: number;
  /** Dotted keys compared whole, not descended into (e.g. free-form template flags). */
  leaves?: readonly string[];
}

/**
 * Keys (dotted, sorted) whose values differ between two settings objects, compared by value
 * (`stableJson`: key order does not matter); a key present on one side only differs.
 */
export function settingsDiff(a: unknown, b: unknown, opts: SettingsDiffOptions = {}, prefix = ''): string[] {
  const isObj = (x: unknown): x is Record<string, unknown> => !!x && typeof x === 'object' && !Array.isArray(x);
  const level = prefix ? prefix.split('.').length : 0;
  if (isObj(a) && isObj(b) && level < (opts.depth ?? Infinity) && !opts.leaves?.includes(prefix)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) => settingsDiff(a[k], b[k], opts, prefix ? `${prefix}.${k}` : k));
  }
  return stableJson(a) === stableJson(b) ? [] : [prefix || '(root)'];
}

/**
 * 12 hex digits of the SHA-256 of `JSON.stringify(x)`: the name of a derived output. Key order as
 * written (not `stableJson`), so the outputs of existing runs keep their names.
 */
export function hashOf(x: unknown): string {
  return createHash('sha256').update(JSON.stringify(x)).digest('hex').slice(0, 12);
}
