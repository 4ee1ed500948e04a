// Hostile programs in the sandbox: each must be graded a failure and contained, host unharmed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_CODE_LIMITS as DEFAULT_LIMITS } from '../../src/study/eval.ts';
import { runTests, type Program } from '../../src/tasks/code.ts';
import { runInSandbox, sandboxAvailable, sandboxPython, SANDBOX_UID } from '../../src/tasks/sandbox.ts';
import { waitFor } from '../helpers/wait.ts';

const isRoot = process.platform === 'linux' && process.getuid?.() === 0;
const skip = isRoot ? false : 'the sandbox needs root (unshare + setpriv); it fails closed otherwise';
const LIMITS = { wallMs: 3000, cpuSeconds: 2, memoryMb: 512 };
const AB_TESTS = [
  { input: '2 3\n', output: '5\n' },
  { input: '-7 7', output: '0' },
  { input: '1000000000 1000000000\n', output: '2000000000' },
];
const py = (code: string): Program => ({ lang: 'python', code });
const REPO = process.cwd();

/** Processes of the sandbox uid still alive (host /proc scan). */
function sandboxProcesses(): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (statSync(join('/proc', name)).uid === SANDBOX_UID) pids.push(Number(name));
    } catch {
      /* exited meanwhile */
    }
  }
  return pids;
}

/** The sandbox's processes still alive once the kernel had time to reap them (polls up to 15 s on a loaded machine). */
async function noLeftovers(): Promise<number[]> {
  await waitFor('the sandbox processes to be gone', () => sandboxProcesses().length === 0, { timeoutMs: 15_000, intervalMs: 50 }).catch(
    () => {},
  );
  return sandboxProcesses();
}

test('fails closed without root', { skip: isRoot ? 'running as root' : false }, async () => {
  assert.equal((await sandboxAvailable()).ok, false);
  const r = await runTests(py('print(5)'), [{ input: '', output: '5' }], LIMITS);
  assert.equal(r.passed, false);
  assert.match(r.results[0]!.detail ?? '', /root/);
});

test('sandbox self-check: uid nobody, only loopback, private empty cwd', { skip }, async () => {
  assert.deepEqual(await sandboxAvailable(), { ok: true });
  const r = await runInSandbox({
    files: [
      { name: 'main.py', content: 'import os\nprint(os.getuid(), os.getgid(), os.getgroups(), sorted(os.listdir(".")), os.getcwd())' },
    ],
    argv: [sandboxPython()!, '-I', '-S', 'main.py'],
    limits: LIMITS,
  });
  assert.equal(r.exitCode, 0, r.stderr);
  assert.equal(r.stdout.trim(), "65534 65534 [] ['main.py'] /tmp/w");
});

test('correct A+B passes; off-by-one is graded wrong', { skip }, async () => {
  const ok = await runTests(py('a, b = map(int, input().split())\nprint(a + b)'), AB_TESTS, LIMITS);
  assert.equal(ok.passed, true, JSON.stringify(ok.results));
  assert.deepEqual(
    ok.results.map((r) => r.status),
    ['ok', 'ok', 'ok'],
  );
  const bad = await runTests(py('a, b = map(int, input().split())\nprint(a + b + 1)'), AB_TESTS, LIMITS);
  assert.equal(bad.passed, false);
  assert.deepEqual(
    bad.results.map((r) => r.status),
    ['wrong', 'wrong', 'wrong'],
  );
  const crash = await runTests(py('raise SystemExit(3)'), AB_TESTS.slice(0, 1), LIMITS);
  assert.equal(crash.results[0]!.status, 'runtime_error');
  const stop = await runTests(py('print(5)'), AB_TESTS, LIMITS, { stopOnFirstFailure: true });
  assert.deepEqual(
    stop.results.map((r) => r.status),
    ['ok', 'wrong'],
  );
  assert.equal(stop.passed, false);
  const none = await runTests(null, AB_TESTS, LIMITS);
  assert.equal(none.passed, false);
});

test('C++: A+B compiles and passes; a compile error is graded compile_error', { skip }, async () => {
  const cpp = '#include <iostream>\nint main(){long long a,b;std::cin>>a>>b;std::cout<<a+b<<"\\n";}';
  const ok = await runTests({ lang: 'cpp', code: cpp }, AB_TESTS, LIMITS);
  assert.equal(ok.passed, true, JSON.stringify(ok.results));
  const bad = await runTests({ lang: 'cpp', code: 'int main( { return 0; }' }, AB_TESTS.slice(0, 1), LIMITS);
  assert.equal(bad.results[0]!.status, 'compile_error');
});

test('infinite loop is killed by the CPU/wall limit within ~2-3 s', { skip }, async () => {
  const t0 = performance.now();
  const r = await runTests(py('while True:\n    pass'), AB_TESTS.slice(0, 1), LIMITS);
  const took = performance.now() - t0;
  assert.equal(r.results[0]!.status, 'timeout');
  // the wall limit plus process start-up and teardown on a loaded machine; unbounded would be forever
  assert.ok(took < LIMITS.wallMs + 3000, `took ${took} ms`);
  const sleeper = await runTests(py('import time\ntime.sleep(60)'), AB_TESTS.slice(0, 1), { ...LIMITS, wallMs: 1500 });
  assert.equal(sleeper.results[0]!.status, 'timeout');
  assert.ok(sleeper.results[0]!.ms < 1500 + 3000, `the 60 s sleep ran ${sleeper.results[0]!.ms} ms`);
  assert.deepEqual(await noLeftovers(), []);
});

test('fork bomb is contained and leaves no process behind', { skip }, async () => {
  const t0 = performance.now();
  const bomb = 'import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass';
  const r = await runTests(py(bomb), AB_TESTS.slice(0, 1), { ...LIMITS, wallMs: 2000 });
  assert.notEqual(r.results[0]!.status, 'ok');
  assert.ok(performance.now() - t0 < 2000 + 5000, 'the fork bomb was stopped near its 2 s wall limit');
  assert.deepEqual(await noLeftovers(), [], 'no process of uid 65534 survives');
  // The plain form from the brief, and a setsid()-daemon that tries to outlive the run.
  const plain = await runTests(py('import os\nwhile True: os.fork()'), AB_TESTS.slice(0, 1), { ...LIMITS, wallMs: 2000 });
  assert.notEqual(plain.results[0]!.status, 'ok');
  const daemon =
    'import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(120)\n    os._exit(0)\nprint(5)';
  const d = await runTests(py(daemon), AB_TESTS.slice(0, 1), LIMITS);
  assert.equal(d.results[0]!.status, 'ok');
  assert.deepEqual(await noLeftovers(), [], 'the daemon was killed with the run');
  // The host can still fork afterwards (no exhausted process table).
  const after = await runTests(py('print(5)'), AB_TESTS.slice(0, 1), LIMITS);
  assert.equal(after.results[0]!.status, 'ok');
});

test('memory bomb fails with a memory error, not a host OOM', { skip }, async () => {
  const r = await runTests(py('x = bytearray(10 * 1024**3)\nprint(5)'), AB_TESTS.slice(0, 1), LIMITS);
  assert.equal(r.results[0]!.status, 'memory');
  const grow = await runTests(py('a = []\nwhile True:\n    a.append(bytearray(50 * 1024**2))'), AB_TESTS.slice(0, 1), LIMITS);
  assert.equal(grow.results[0]!.status, 'memory');
  const cpp = '#include <vector>\n#include <cstdio>\nint main(){std::vector<char> v(10ULL<<30, 1); printf("%d\\n", (int)v[12345]);}';
  const c = await runTests({ lang: 'cpp', code: cpp }, AB_TESTS.slice(0, 1), LIMITS);
  assert.equal(c.results[0]!.status, 'memory', JSON.stringify(c.results));
});

test('no network: sockets to 127.0.0.1 (a live host server) and 1.1.1.1 fail', { skip }, async () => {
  let connections = 0;
  const server = createServer((s) => {
    connections++;
    s.end('5\n');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  try {
    const local = `import socket\ns = socket.create_connection(("127.0.0.1", ${port}), timeout=1)\nprint(s.recv(10).decode().strip())`;
    const r1 = await runTests(py(local), AB_TESTS.slice(0, 1), LIMITS);
    assert.equal(r1.results[0]!.status, 'runtime_error');
    const remote = 'import socket\ns = socket.create_connection(("1.1.1.1", 80), timeout=1)\nprint(5)';
    const r2 = await runTests(py(remote), AB_TESTS.slice(0, 1), LIMITS);
    assert.equal(r2.results[0]!.status, 'runtime_error');
    const dns = 'import socket\nsocket.getaddrinfo("example.com", 80)\nprint(5)';
    const r3 = await runTests(py(dns), AB_TESTS.slice(0, 1), LIMITS);
    assert.equal(r3.results[0]!.status, 'runtime_error');
    assert.equal(connections, 0, 'the host server saw no connection');
  } finally {
    server.close();
  }
});

test('writes outside the work dir do not reach the host', { skip }, async () => {
  const tag = randomBytes(6).toString('hex');
  const tmpTarget = `/tmp/rac-sandbox-escape-${tag}`;
  const repoTarget = join(REPO, `rac-sandbox-escape-${tag}`);
  const shmTarget = `/dev/shm/rac-sandbox-escape-${tag}`;
  const varTarget = `/var/tmp/rac-sandbox-escape-${tag}`;
  const code = [
    'import os',
    `for p in [${JSON.stringify(tmpTarget)}, ${JSON.stringify(shmTarget)}]:`,
    '    open(p, "w").write("x")  # private tmpfs inside the sandbox',
    `for p in [${JSON.stringify(varTarget)}, ${JSON.stringify(repoTarget)}]:`,
    '    try:',
    '        open(p, "w").write("x")',
    '    except OSError:',
    '        pass',
    `open(${JSON.stringify(repoTarget)}, "w").write("x")`,
    'print(5)',
  ].join('\n');
  const r = await runTests(py(code), AB_TESTS.slice(0, 1), LIMITS);
  assert.equal(r.results[0]!.status, 'runtime_error');
  for (const p of [tmpTarget, repoTarget, shmTarget, varTarget]) assert.equal(existsSync(p), false, `${p} must not exist`);
  // Even the repo is invisible inside the sandbox: covered by an empty tmpfs, or absent when it
  // lives under /tmp (replaced by the sandbox's private /tmp).
  const peek = await runInSandbox({
    files: [
      { name: 'main.py', content: `import os\np = ${JSON.stringify(REPO)}\nprint(os.listdir(p) if os.path.exists(p) else 'absent')` },
    ],
    argv: [sandboxPython()!, '-I', '-S', 'main.py'],
    limits: LIMITS,
  });
  assert.ok(['[]', 'absent'].includes(peek.stdout.trim()), `repo visible in the sandbox: ${peek.stdout.trim()} ${peek.stderr}`);
});

test("the parent's environment does not leak into the program", { skip }, async () => {
  const secret = `rac-secret-${randomBytes(8).toString('hex')}`;
  process.env.RAC_SANDBOX_TEST_SECRET = secret;
  try {
    const code = [
      'import os',
      'out = [repr(dict(os.environ))]',
      'for pid in os.listdir("/proc"):',
      '    if pid.isdigit():',
      '        try:',
      '            out.append(open(f"/proc/{pid}/environ", "rb").read().decode("latin1"))',
      '        except OSError:',
      '            pass',
      'print("\\n".join(out))',
    ].join('\n');
    const r = await runInSandbox({
      files: [{ name: 'main.py', content: code }],
      argv: [sandboxPython()!, '-I', '-S', 'main.py'],
      limits: LIMITS,
    });
    assert.equal(r.exitCode, 0, r.stderr);
    assert.ok(r.stdout.length > 0);
    assert.ok(!r.stdout.includes(secret), 'secret visible in the sandbox');
    assert.ok(!r.stdout.includes('RAC_SANDBOX_TEST_SECRET'));
    const graded = await runTests(
      py('import os\nprint(os.environ.get("RAC_SANDBOX_TEST_SECRET", "none"))'),
      [{ input: '', output: secret }],
      LIMITS,
    );
    assert.equal(graded.results[0]!.status, 'wrong');
  } finally {
    delete process.env.RAC_SANDBOX_TEST_SECRET;
  }
});

test('output flood is cut at the cap and graded wrong', { skip }, async () => {
  // A generous wall limit: the flood reaches the 1 MiB cap in milliseconds, so a timeout here
  // would only mean a loaded machine was slow to start the sandbox.
  const r = await runTests(py('while True:\n    print("x" * 10000)'), AB_TESTS.slice(0, 1), { ...LIMITS, wallMs: 15_000 });
  assert.equal(r.results[0]!.status, 'wrong', JSON.stringify(r.results[0]));
  assert.match(r.results[0]!.detail ?? '', /output limit/);
});

test('output that fills the cap exactly, then goes on, is cut at the cap (pipe chunks land on the boundary)', { skip }, async () => {
  const python = sandboxPython()!;
  const cap = 64 * 1024; // one pipe chunk: the first read fills it exactly
  const flood = await runInSandbox({
    argv: [python, '-c', 'import os\nwhile True:\n    os.write(1, b"x" * 65536)'],
    files: [],
    limits: { ...LIMITS, wallMs: 15_000, maxOutputBytes: cap },
  });
  assert.equal(flood.outputLimitExceeded, true, JSON.stringify({ ...flood, stdout: flood.stdout.length }));
  assert.equal(flood.stdout.length, cap);
  assert.equal(flood.timedOut, false);
  // Exactly the cap and then exit: at the cap is not over it.
  const exact = await runInSandbox({
    argv: [python, '-c', 'import os\nos.write(1, b"x" * 65536)'],
    files: [],
    limits: { ...LIMITS, maxOutputBytes: cap },
  });
  assert.equal(exact.outputLimitExceeded, false);
  assert.equal(exact.exitCode, 0);
  assert.equal(exact.stdout.length, cap);
});

test('parallel runs under the concurrency limit all pass, temp dirs cleaned up', { skip }, async () => {
  // A private TMPDIR: other test files (and any eval on the machine) make rac-sbx-* dirs in /tmp at the same time.
  const own = mkdtempSync(join(tmpdir(), 'sandbox-test-'));
  chmodSync(own, 0o1777); // as /tmp: the sandbox's user must reach its run directory
  const saved = process.env['TMPDIR'];
  process.env['TMPDIR'] = own;
  try {
    const tests = Array.from({ length: 8 }, (_, i) => ({ input: `${i} ${i}\n`, output: `${2 * i}\n` }));
    const r = await runTests(py('a, b = map(int, input().split())\nprint(a + b)'), tests, LIMITS);
    assert.equal(r.passed, true, JSON.stringify(r.results));
    assert.deepEqual(readdirSync(own), []);
  } finally {
    if (saved === undefined) delete process.env['TMPDIR'];
    else process.env['TMPDIR'] = saved;
    rmSync(own, { recursive: true, force: true });
  }
  assert.deepEqual(await noLeftovers(), []);
});

test('descriptors inherited by rac (fd 40 on a 0600 file, fd 251) are closed before the program runs', { skip }, async () => {
  // A shell redirection around rac (`exec 40>>file`) leaves non-close-on-exec descriptors in
  // rac's process; a child rac with them at 40 and 251 runs one sandboxed program.
  const dir = mkdtempSync(join(tmpdir(), 'rac-sbx-fd-'));
  const secret = join(dir, 'secret');
  writeFileSync(secret, 'root only\n', { mode: 0o600 });
  const wfd = openSync(secret, 'a');
  const rfd = openSync(secret, 'r');
  const code = [
    'import os',
    'out = {}',
    'try:',
    '    os.write(40, b"written by the sandbox\\n")',
    '    out["write40"] = "ok"',
    'except OSError as e:',
    '    out["write40"] = e.errno',
    'try:',
    '    os.fstat(251)',
    '    out["fstat251"] = "ok"',
    'except OSError as e:',
    '    out["fstat251"] = e.errno',
    'opened = []',
    'for fd in range(3, 1024):',
    '    try:',
    '        os.fstat(fd)',
    '        opened.append(fd)',
    '    except OSError:',
    '        pass',
    'out["open"] = opened',
    'print(__import__("json").dumps(out))',
  ].join('\n');
  const driver = [
    `const { runInSandbox, sandboxPython } = await import(${JSON.stringify(join(REPO, 'src/tasks/sandbox.ts'))});`,
    `const r = await runInSandbox({ files: [{ name: 'main.py', content: ${JSON.stringify(code)} }], argv: [sandboxPython(), '-I', '-S', 'main.py'], limits: ${JSON.stringify(LIMITS)} });`,
    'process.stdout.write(JSON.stringify(r));',
  ].join('\n');
  const stdio: (number | 'pipe' | 'ignore')[] = ['ignore', 'pipe', 'pipe'];
  for (let i = 3; i < 252; i++) stdio.push('ignore');
  stdio[40] = wfd;
  stdio[251] = rfd;
  let child: ReturnType<typeof spawn> | undefined;
  try {
    child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', driver], { cwd: REPO, stdio });
    const chunks: Buffer[] = [];
    const errs: Buffer[] = [];
    child.stdout!.on('data', (d: Buffer) => chunks.push(d));
    child.stderr!.on('data', (d: Buffer) => errs.push(d));
    const code0 = await new Promise<number | null>((resolve) => child!.on('close', resolve));
    assert.equal(code0, 0, Buffer.concat(errs).toString());
    const r = JSON.parse(Buffer.concat(chunks).toString()) as { exitCode: number; stdout: string; stderr: string };
    assert.equal(r.exitCode, 0, r.stderr);
    const seen = JSON.parse(r.stdout) as { write40: unknown; fstat251: unknown; open: number[] };
    assert.deepEqual(seen, { write40: 9, fstat251: 9, open: [] }, 'EBADF for both; no descriptor above 2 open');
    assert.equal(readFileSync(secret, 'utf8'), 'root only\n');
  } finally {
    child?.kill('SIGKILL');
    closeSync(wfd);
    closeSync(rfd);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a Python program starts and joins 16 threads under the default limits', { skip }, async () => {
  const code = [
    'import threading',
    'done = []',
    'all_alive = threading.Barrier(17)  # all 16 threads exist at once',
    'def work(i):',
    '    all_alive.wait(timeout=5)',
    '    done.append(sum(range(1000 * i)))',
    'ts = [threading.Thread(target=work, args=(i,)) for i in range(16)]',
    'for t in ts:',
    '    t.start()',
    'all_alive.wait(timeout=5)',
    'for t in ts:',
    '    t.join()',
    'print(len(done))',
  ].join('\n');
  // Under the grading defaults (2 GiB address space) and the tighter 512 MiB of these tests.
  for (const limits of [DEFAULT_LIMITS, LIMITS]) {
    const r = await runTests(py(code), [{ input: '', output: '16' }], limits);
    assert.equal(r.passed, true, JSON.stringify({ memoryMb: limits.memoryMb, results: r.results }));
  }
});
