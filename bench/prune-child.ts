/** Child process for prune_rss: prune MODEL with CALIB into OUT, print peak RSS (KiB). */
import { Model } from '../src/models/model.ts';
import { readCalibJsonl } from '../src/pipeline/calib.ts';
import { pruneCheckpoint } from '../src/pipeline/prune.ts';

const [model, calib, out] = process.argv.slice(2);
const m = Model.open(model!);
const set = readCalibJsonl(calib!, null, m.config.vocabSize, { tokenBudget: 0, maxSeqLen: 4096 });
await pruneCheckpoint(m, set, out!, { method: 'sparsegpt', target: { kind: 'unstructured', sparsity: 0.5 }, linears: 'all', batchTokens: 4096, errorStats: false, overwrite: true }, 'bench');
m.close();
process.stdout.write(String(process.resourceUsage().maxRSS) + '\n');
