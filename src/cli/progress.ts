/**
 * Progress on stderr: a cli-progress bar on a terminal, a line every few seconds otherwise
 * (logs, CI), nothing with --quiet. Never writes to stdout, which belongs to results.
 */
import cliProgress from 'cli-progress';

export interface Progress {
  update(value: number, payload?: Record<string, string | number>): void;
  stop(): void;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  if (seconds < 60) return `${seconds.toFixed(0)}s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m}m${String(Math.round(seconds % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

export function progress(label: string, total: number, opts: { quiet?: boolean; unit?: string; extra?: string } = {}): Progress {
  if (opts.quiet) return { update() {}, stop() {} };
  const unit = opts.unit ?? '';
  const extra = opts.extra ?? '';
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        format: `${label} [{bar}] {value}/{total}${unit ? ` ${unit}` : ''} | {percentage}% | ETA {eta_formatted}${extra}`,
        stream: process.stderr,
        hideCursor: true,
        clearOnComplete: false,
        etaBuffer: 50,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, {});
    return {
      update: (v, payload) => bar.update(v, payload ?? {}),
      stop: () => bar.stop(),
    };
  }
  const t0 = Date.now();
  let last = 0;
  let lastValue = 0;
  const line = (v: number, payload?: Record<string, string | number>) => {
    const el = (Date.now() - t0) / 1000;
    const eta = v > 0 ? (el / v) * (total - v) : NaN;
    let tail = extra;
    for (const [k, val] of Object.entries(payload ?? {})) tail = tail.replace(`{${k}}`, String(val));
    process.stderr.write(
      `${label} ${v}/${total}${unit ? ` ${unit}` : ''} (${((100 * v) / Math.max(1, total)).toFixed(0)}%) elapsed ${formatDuration(el)} ETA ${formatDuration(eta)}${tail}\n`,
    );
  };
  return {
    update(v, payload) {
      lastValue = v;
      const now = Date.now();
      if (now - last >= 5000 || v >= total) {
        last = now;
        line(v, payload);
      }
    },
    stop() {
      if (Date.now() - last > 0 && lastValue < total) line(lastValue);
    },
  };
}
