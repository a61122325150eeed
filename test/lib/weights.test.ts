import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as http from 'http';
import * as os from 'os';
import * as path from 'path';
import { AddressInfo } from 'net';
import * as tf from '@tensorflow/tfjs';
import { DeepLab } from '../../lib/models/deeplab';
import { assignWeights, MANIFEST_FILE, readSavedDir, readSavedUrl, saveModel, WEIGHTS_FILE } from '../../lib/weights/format';
import { tfReady } from '../helpers/tf-setup';

function maxDiff(a: DeepLab, b: DeepLab, x: tf.Tensor4D): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a.forward(x).logits, b.forward(x).logits))).dataSync()[0]);
}

describe('lib/weights: the saved format', () => {
  let dir: string;
  before(async () => {
    await tfReady();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'deeplab-weights-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('saves and loads a model bit-exactly, running statistics included', async () => {
    const a = new DeepLab({ variant: 'v3plus', width: 0.125, seed: 3, classes: 4 });
    // Make the BN statistics non-trivial so a format that forgot them would fail.
    for (const [name, v] of a.store.stats) if (name.endsWith('running_var')) v.assign(tf.fill(v.shape, 2.5));
    const manifest = await saveModel(a, dir, 'tanh', { classNames: ['bg', 'a', 'b', 'c'] });
    assert.equal(manifest.weights.length, a.store.all().length);
    const saved = readSavedDir(dir);
    const b = new DeepLab({ ...saved.manifest.spec, seed: 99 });
    const x = tf.randomUniform([1, 49, 49, 3], -1, 1, 'float32', 1) as tf.Tensor4D;
    assert.ok(maxDiff(a, b, x) > 1e-4, 'different seeds differ before loading');
    assignWeights(b, saved);
    assert.equal(maxDiff(a, b, x), 0);
    assert.deepEqual(saved.manifest.classNames, ['bg', 'a', 'b', 'c']);
    x.dispose();
    a.dispose();
    b.dispose();
  });

  it('refuses weights for another network, and a truncated weights file', () => {
    const other = new DeepLab({ variant: 'v3plus', width: 0.25, classes: 4 });
    assert.throws(() => assignWeights(other, readSavedDir(dir)), /saved shape .* does not match/);
    other.dispose();
    const bad = path.join(dir, 'truncated');
    fs.mkdirSync(bad);
    fs.copyFileSync(path.join(dir, MANIFEST_FILE), path.join(bad, MANIFEST_FILE));
    fs.writeFileSync(path.join(bad, WEIGHTS_FILE), fs.readFileSync(path.join(dir, WEIGHTS_FILE)).subarray(0, 1000));
    assert.throws(() => readSavedDir(bad), /truncated/);
    assert.throws(() => readSavedDir(os.tmpdir()), /not a saved DeepLab model directory/);
  });

  it('loads the same files from an http URL (a local server)', async () => {
    const server = http.createServer((req, res) => {
      const file = path.join(dir, path.basename(req.url ?? ''));
      if (!req.url?.startsWith('/models/') || !fs.existsSync(file)) {
        res.writeHead(404).end('not found');
        return;
      }
      res.writeHead(200).end(fs.readFileSync(file));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const local = readSavedDir(dir);
      for (const url of [`http://127.0.0.1:${port}/models/`, `http://127.0.0.1:${port}/models/${MANIFEST_FILE}`]) {
        const remote = await readSavedUrl(url);
        assert.deepEqual(remote.manifest, local.manifest);
        assert.deepEqual(Buffer.from(remote.data.buffer), Buffer.from(local.data.buffer));
      }
      await assert.rejects(readSavedUrl(`http://127.0.0.1:${port}/nothing/`), /HTTP 404/);
    } finally {
      server.close();
    }
  });
});
