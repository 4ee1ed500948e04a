/**
 * Cheap identity of a large file: its size and 16 evenly spaced 4 KiB windows (the first and the
 * last included) fed to a hash. Reads 64 KiB whatever the size, so fingerprinting a multi-GB
 * checkpoint costs nothing; any change to the header, the size or a sampled window shows.
 */
import type { Hash } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { ModelFileError } from './model-file.ts';

export const SAMPLE_WINDOWS = 16;
export const SAMPLE_WINDOW_BYTES = 4096;

/** Feed `label:size;` and the sampled windows of `path` to `h`. */
export function updateWithFileSample(h: Hash, path: string, label: string): void {
  // Non-blocking open and fstat: a FIFO (or socket, device) is refused, not waited on.
  const fd = openSync(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  try {
    const st = fstatSync(fd);
    if (!st.isFile())
      throw new ModelFileError(
        path,
        `is ${st.isFIFO() ? 'a FIFO' : st.isDirectory() ? 'a directory' : 'not a plain file'}, not a regular file`,
      );
    const size = st.size;
    h.update(`${label}:${size};`);
    const buf = Buffer.alloc(SAMPLE_WINDOW_BYTES);
    for (let k = 0; k < SAMPLE_WINDOWS; k++) {
      const pos = Math.max(0, Math.floor(((size - buf.length) * k) / (SAMPLE_WINDOWS - 1)));
      const n = readSync(fd, buf, 0, buf.length, pos);
      h.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
}
