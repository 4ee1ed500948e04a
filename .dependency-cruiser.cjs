/**
 * The import rule of src/ (README: Layout), checked by `npm run lint:deps` (part of `npm test`).
 *
 * Rooms are listed lowest first. A room may import rooms on lower rows only; rooms on the same row
 * are peers and import neither each other nor anything above. `src/version.ts` may be imported by
 * anyone. No import cycles anywhere, type-only imports included. test/, scripts/ and bench/ sit on
 * top and may import any room; src/ imports none of them. Only src/runtime imports onnxruntime-node;
 * src/compress imports no node built-in and no package.
 */
const LAYERS = [
  ['compress'], // pure math on typed arrays
  ['io', 'runtime', 'tasks'], // files and formats; the one door to onnxruntime; task generators and graders
  ['models'], // architectures, graphs, engine, generation, a loaded model
  ['prune'], // the layer loop, calibration, rac.json
  ['export'], // GGUF export
  ['backends'], // generation backends behind one interface
  ['report'], // rac report
  ['study', 'serve'], // trace / eval / rac run / estimate; rac serve
  ['api'], // rac as a library (src/index.ts is its public face)
  ['cli'], // commands
];

const forbidden = [
  {
    name: 'index-is-the-entry',
    severity: 'error',
    comment: 'src/index.ts is what package users import; nothing inside src imports it',
    from: { path: '^src/' },
    to: { path: '^src/index\\.ts$' },
  },
  { name: 'no-circular', severity: 'error', comment: 'import cycles make the layers meaningless', from: {}, to: { circular: true } },
  { name: 'not-to-unresolvable', severity: 'error', from: {}, to: { couldNotResolve: true } },
  {
    name: 'src-not-to-tooling',
    severity: 'error',
    comment: 'src/ is the package: it imports no test, script or bench code',
    from: { path: '^src/' },
    to: { path: '^(test|scripts|bench)/' },
  },
  {
    name: 'one-door-to-onnxruntime',
    severity: 'error',
    comment: 'src/runtime/ is the only module that imports onnxruntime-node (its package.json, for the version, is fine)',
    from: { path: '^src/', pathNot: '^src/runtime/' },
    to: { path: 'node_modules/onnxruntime-node/', pathNot: 'node_modules/onnxruntime-node/package\\.json$' },
  },
  {
    name: 'compress-is-pure',
    severity: 'error',
    comment: 'src/compress is math on typed arrays: no node built-ins, no packages',
    from: { path: '^src/compress/' },
    to: { dependencyTypes: ['core', 'npm', 'npm-dev', 'npm-optional', 'npm-peer', 'npm-no-pkg', 'npm-unknown'] },
  },
  {
    name: 'rooms-known',
    severity: 'error',
    comment: 'every directory under src/ is a room of LAYERS (add a new one there and to the README)',
    from: { path: '^src/', pathNot: `^src/(${LAYERS.flat().join('|')})/|^src/(version|errors|index)\\.ts$` },
    to: {},
  },
];
LAYERS.forEach((row, i) => {
  const higher = LAYERS.slice(i + 1).flat();
  for (const room of row) {
    const peers = row.filter((r) => r !== room);
    const banned = [...peers, ...higher];
    if (banned.length === 0) continue;
    forbidden.push({
      name: `layer-${room}`,
      severity: 'error',
      comment: `src/${room} may import only ${LAYERS.slice(0, i).flat().join(', ') || 'nothing but node and npm packages'} (README: Layout)`,
      from: { path: `^src/${room}/` },
      to: { path: `^src/(${banned.join('|')})/` },
    });
  }
});

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden,
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.mjs', '.js', '.json'] },
    exclude: { path: '^node_modules/' },
  },
};
