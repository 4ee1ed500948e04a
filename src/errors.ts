/**
 * rac's error classes: every error rac raises for bad input, a bad model or a refused job is a
 * RacError whose message is one line meant for the user (it names the file and the problem).
 * Library callers can tell them from bugs with `instanceof RacError`; the CLI prints the message
 * alone and exits 1 — 2 for a UsageError (arguments or settings that contradict or are missing).
 * Each room keeps its own subclasses (ConfigError, CheckpointError, CalibError, ExportError, …);
 * this module may be imported by anyone, as src/version.ts.
 */
export class RacError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** Arguments or job settings that are missing or contradict each other (the CLI's exit code 2). */
export class UsageError extends RacError {}
