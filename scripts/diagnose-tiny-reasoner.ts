/**
 * Where a tiny-reasoner model fails on the `trace` family: teacher-forced next-token accuracy on
 * the gold scratchpads of held-out problems, by the role each token plays in its line.
 *
 *   npx tsx scripts/diagnose-tiny-reasoner.ts --model models/tiny-reasoner [--n 100] [--threads 1]
 *
 * Roles (see src/tasks/tiny/trace.ts for the line format
 * `line k: t = x op y ; Xv op Yw = v op w = r ; Tr ; state …`, then `print(x) ; Xv`):
 * stmt (the statement copied from the prompt), fetch (a value after its binding name `X` in the
 * fetch), subst (the bare numbers), result, assign (`Tr`), state (state values), print (the
 * printed value), other.
 * A token's role is the role of its first character.
 */
import { closeModel, loadModel } from '../src/models/loaded.ts';
import { generateSplit } from '../src/tasks/tiny/index.ts';
import { numberFlag, parseFlags, stringFlag } from './train/cli.ts';

export type Role = 'stmt' | 'fetch' | 'subst' | 'result' | 'assign' | 'state' | 'print' | 'other';

/** The role of every character of a trace completion. */
export function traceRoles(text: string): Role[] {
  const roles = new Array<Role>(text.length).fill('other');
  let off = 0;
  for (const line of text.split('\n')) {
    const set = (a: number, b: number, r: Role) => roles.fill(r, off + a, off + b);
    const sep = line.indexOf(' ; ');
    if (line.startsWith('line ') && sep > 0) {
      const s0 = line.indexOf(': ') + 2;
      set(s0, sep, 'stmt');
      const parts = line.slice(sep + 3).split(' ; ');
      let p0 = sep + 3;
      parts.forEach((p, i) => {
        const values = (r: Role) => {
          for (const m of p.matchAll(/[A-Z](\d+)/g)) set(p0 + m.index + 1, p0 + m.index + 1 + m[1]!.length, r);
        };
        if (p.startsWith('state ')) values('state');
        else if (i === parts.length - 2) values('assign');
        else {
          // `Xv op Yw = v op w = r` (binary) or `Xv = v` (copy); a literal-only line has no fetch part.
          const segs = p.split(' = ');
          let q = p0;
          segs.forEach((sg, si) => {
            if (si === 0)
              for (const m of sg.matchAll(/[A-Z](\d+)/g)) roles.fill('fetch', off + q + m.index + 1, off + q + m.index + 1 + m[1]!.length);
            else roles.fill(si === segs.length - 1 && segs.length > 2 ? 'result' : 'subst', off + q, off + q + sg.length);
            q += sg.length + 3;
          });
        }
        p0 += p.length + 3;
      });
    }
    const pm = /^print\([a-z]\) ; [A-Z](\d+)$/.exec(line);
    if (pm) set(line.length - pm[1]!.length, line.length, 'print');
    off += line.length + 1;
  }
  return roles;
}

async function main(): Promise<void> {
  const S = { type: 'string' } as const;
  const v = parseFlags(process.argv.slice(2), { model: S, n: S, threads: S });
  const dir = stringFlag(v, 'model');
  if (!dir) throw new Error('--model DIR is required');
  const n = numberFlag(v, 'n', 100);
  const m = await loadModel(dir, { threads: numberFlag(v, 'threads', 1) });
  const stats = new Map<Role, [number, number]>();
  try {
    const V = m.model.config.vocabSize;
    for (const p of generateSplit('eval', 'trace', n, 0)) {
      const prompt = m.tokenizer.encode(
        m.tokenizer.applyChatTemplate([{ role: 'user', content: p.prompt }], { addGenerationPrompt: true }),
        { addSpecialTokens: false },
      );
      const comp = m.tokenizer.encode(p.completion, { addSpecialTokens: false });
      const [logits] = await m.engine.forward([[...prompt, ...comp]]);
      const roles = traceRoles(p.completion);
      let pos = 0;
      comp.forEach((t, k) => {
        const at = (prompt.length - 1 + k) * V;
        let best = 0;
        for (let v = 1; v < V; v++) if (logits![at + v]! > logits![at + best]!) best = v;
        const role = roles[pos] ?? 'other';
        const s = stats.get(role) ?? [0, 0];
        s[0] += best === t ? 1 : 0;
        s[1]++;
        stats.set(role, s);
        pos += m.tokenizer.decode([t]).length;
      });
    }
  } finally {
    await closeModel(m);
  }
  console.log(`teacher-forced next-token accuracy on ${n} held-out trace problems (${dir})`);
  for (const [role, [ok, all]] of stats) console.log(`${role.padEnd(7)} ${((100 * ok) / all).toFixed(2).padStart(6)}%  of ${all} tokens`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : e);
    process.exit(1);
  });
}
