/**
 * The PyTorch checkpoint reader against files written by the real torch.save (Debian's PyTorch 1.13,
 * test/fixtures/torch/make_reader_fixtures.py): both containers, every dtype, views sharing storages,
 * wrapped training checkpoints; and refusals: pickles that would run code, truncated and damaged files.
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { readTorchCheckpoint, readTorchCheckpointBytes, TorchCheckpoint } from '../../lib/weights/torch';
import { StorageTable } from '../../lib/weights/torch/globals';
import { isTuple, PyDict, unpickle } from '../../lib/weights/torch/pickle';
import { runTorchPython } from '../helpers/torch-python';

const OUT = path.resolve(__dirname, '../../../test-output/torch-reader');
const SCRIPT = path.resolve(__dirname, '../../../test/fixtures/torch/make_reader_fixtures.py');
const MARKER = path.join(OUT, 'PWNED');

interface Expected {
  tensors: Record<string, { shape: number[]; dtype: string; offset: number; length: number }>;
  storages: number;
  storagesTotal?: number;
  meta?: Record<string, unknown>;
}
interface Manifest {
  cases: Record<string, Expected>;
  folders: Record<string, string>;
  evilGlobal: string;
}

const file = (name: string): string => path.join(OUT, name);

function f32(name: string): Float32Array {
  const b = fs.readFileSync(file(name));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** Values equal bit for bit in meaning: NaN equals NaN, and -0 differs from 0. */
function assertSame(name: string, got: Float32Array, want: Float32Array): void {
  assert.equal(got.length, want.length, `${name}: length`);
  for (let i = 0; i < want.length; i++) {
    if (!Object.is(got[i], want[i])) assert.fail(`${name}[${i}] is ${got[i]}, torch says ${want[i]}`);
  }
}

function checkCase(ckpt: TorchCheckpoint, exp: Expected, blob: Float32Array): void {
  assert.deepEqual([...ckpt.tensors.keys()], Object.keys(exp.tensors), 'names, in the state dict order');
  for (const [name, e] of Object.entries(exp.tensors)) {
    const t = ckpt.tensors.get(name);
    assert.ok(t, name);
    assert.deepEqual(t.shape, e.shape, `${name}: shape`);
    assert.equal(t.dtype, e.dtype, `${name}: dtype`);
    assertSame(name, t.data, blob.subarray(e.offset, e.offset + e.length));
  }
}

/** A decoded pickle value as the fixture script writes its expectation (see plain_value there). */
function plain(v: unknown): unknown {
  if (v instanceof PyDict) return Object.fromEntries([...v].map(([k, x]) => [String(k), plain(x)]));
  if (Array.isArray(v)) return v.map(plain);
  if (v instanceof Uint8Array) return { bytes: Buffer.from(v).toString('hex') };
  if (typeof v === 'bigint') return { int: v.toString() };
  return v;
}

async function rejects(name: string, pattern: RegExp | string): Promise<Error> {
  let error: Error | undefined;
  try {
    await readTorchCheckpoint(file(name));
  } catch (err) {
    error = err as Error;
  }
  assert.ok(error, `${name} was read without an error`);
  if (typeof pattern === 'string') assert.ok(error.message.includes(pattern), `${name}: "${error.message}" lacks "${pattern}"`);
  else assert.match(error.message, pattern);
  assert.ok(error.message.startsWith(`${file(name)}: `), `the error names the file: ${error.message}`);
  return error;
}

describe('lib/weights/torch: reading PyTorch checkpoints', () => {
  let manifest: Manifest;
  before(function () {
    this.timeout(600_000);
    fs.rmSync(OUT, { recursive: true, force: true });
    runTorchPython(SCRIPT, [OUT]);
    manifest = JSON.parse(fs.readFileSync(file('expected.json'), 'utf8')) as Manifest;
  });

  for (const format of ['zip', 'legacy'] as const) {
    it(`reads a state dict of every dtype and view from the ${format} container, equal to torch`, async () => {
      const ckpt = await readTorchCheckpoint(file(`plain.${format}.pth`));
      assert.equal(ckpt.format, format);
      assert.equal(ckpt.container, undefined);
      assert.deepEqual(ckpt.meta, {});
      checkCase(ckpt, manifest.cases.plain, f32('plain.expected.f32'));
      assert.equal(ckpt.stats.storagesRead, manifest.cases.plain.storages, 'views share one storage, read once');
      assert.equal(ckpt.stats.storagesTotal, manifest.cases.plain.storages);
    });

    it(`unwraps a training checkpoint (${format}): state_dict, module. stripped, scalars as meta, optimizer unread`, async () => {
      const ckpt = await readTorchCheckpoint(file(`wrapped.${format}.pth`));
      const exp = manifest.cases.wrapped;
      assert.equal(ckpt.container, 'state_dict');
      checkCase(ckpt, exp, f32('wrapped.expected.f32'));
      assert.deepEqual(ckpt.meta, exp.meta, 'numpy scalars (best_pred, iters) are plain numbers');
      assert.equal(ckpt.stats.storagesRead, exp.storages);
      assert.equal(ckpt.stats.storagesTotal, exp.storagesTotal, 'the optimizer momenta are in the file but not read');
    });

    it(`reads the ${format} container from memory, aligned or not`, async () => {
      const bytes = fs.readFileSync(file(`plain.${format}.pth`));
      const shifted = new Uint8Array(bytes.length + 1).subarray(1);
      shifted.set(bytes);
      for (const b of [new Uint8Array(bytes), shifted]) {
        const ckpt = await readTorchCheckpointBytes(b, 'plain');
        checkCase(ckpt, manifest.cases.plain, f32('plain.expected.f32'));
      }
    });

    it(`refuses a pickle that calls os.system (${format}), naming the global and running nothing`, async () => {
      assert.equal(fs.existsSync(MARKER), false);
      await rejects(`evil.${format}.pth`, `pickle refers to global "${manifest.evilGlobal}", which is not allowed in a weights file (only tensors and containers are read)`);
      assert.equal(fs.existsSync(MARKER), false, 'the command ran');
    });
  }

  it('reads pickle protocol 4 (frames, memoize, bytes) and finds the zip folder whatever its name', async () => {
    const ckpt = await readTorchCheckpoint(file('wrapped-p4.zip.pth'));
    checkCase(ckpt, manifest.cases.wrapped, f32('wrapped.expected.f32'));
    assert.deepEqual(ckpt.meta, manifest.cases.wrapped.meta);
    assert.deepEqual(manifest.folders, { 'plain.zip.pth': 'plain.zip', 'buffer.zip.pth': 'archive' });
    checkCase(await readTorchCheckpoint(file('buffer.zip.pth')), manifest.cases.plain, f32('plain.expected.f32'));
  });

  it('refuses a whole pickled model, naming its class', async () => {
    await rejects('whole-model.zip.pth', 'pickle refers to global "torch.nn.modules.container.Sequential"');
  });

  it('refuses truncated, damaged and absurd files with what is wrong', async () => {
    await rejects('truncated.zip.pth', /: truncated zip \(/);
    await rejects('truncated.legacy.pth', /: truncated legacy checkpoint \(.*file ends/);
    await rejects('bigendian.zip.pth', /written big-endian/);
    await rejects('short-storage.zip.pth', /storage plain\.zip\/data\/0 holds 4 bytes, but the pickle says it holds \d+ float32 elements/);
    await rejects('absurd.legacy.pth', /says it holds 1099511627776 \w+ elements.*but the file ends at byte/);
    await rejects('view-past-storage.zip.pth', /tensor "w" \(size \[10\], stride \[1\], offset 0\) reaches element 9 of storage 0 \(float32 x 4\)/);
  });

  it('refuses what is no checkpoint', async () => {
    const neither = 'not a PyTorch checkpoint (neither a zip archive nor a legacy pickle)';
    await rejects('neither.pth', neither);
    await rejects('plain-pickle.pth', neither);
    await rejects('missing.pth', /ENOENT/);
    await assert.rejects(readTorchCheckpointBytes(new Uint8Array(0), 'upload'), /^Error: upload: not a PyTorch checkpoint \(the file is empty\)/);
  });

  describe('the pickle VM', () => {
    const run = (hex: string): unknown => unpickle(Buffer.from(hex, 'hex'), 0, new StorageTable()).value;

    it('decodes every protocol (0 to 5) as Python wrote it', () => {
      const cases = JSON.parse(fs.readFileSync(file('vm-cases.json'), 'utf8')) as { expected: unknown; pickles: Record<string, string> };
      for (const [protocol, hex] of Object.entries(cases.pickles)) {
        const v = run(hex);
        assert.deepEqual(plain(v), cases.expected, `protocol ${protocol}`);
        const d = v as PyDict;
        assert.ok(isTuple(d.get('e')) && !isTuple(d.get('b')), 'tuples are frozen, lists are not');
        assert.equal(d.get('s1'), d.get('s2'), `protocol ${protocol}: a memoised object is shared, not copied`);
      }
    });

    it('refuses globals outside the allow-list, by GLOBAL, STACK_GLOBAL and INST', () => {
      const text = (s: string): string => Buffer.from(s, 'latin1').toString('hex');
      const cases: [string, string][] = [
        [text('cbuiltins\neval\n(Vprint(1)\ntR.'), 'builtins.eval'],
        [`800495${'00'.repeat(8)}${text('\x8c\x0asubprocess\x94\x8c\x05Popen\x94\x93\x94)R.')}`, 'subprocess.Popen'],
        [text('(S"rm -rf /"\nios\nsystem\n.'), 'os.system'],
      ];
      for (const [hex, name] of cases) {
        assert.throws(() => run(hex), new RegExp(`pickle refers to global "${name.replace('.', '\\.')}", which is not allowed`));
      }
    });

    it('bounds its stack, nesting and memo, and refuses out-of-band buffers and the extension registry', () => {
      assert.throws(() => run('80' + '02' + '28'.repeat(70_000)), /nests deeper than/);
      assert.throws(() => run('8002' + '6a' + 'ffffff00' + '2e'), /memo entry 16777215 read before it was written/);
      assert.throws(() => run('800582002e'), /copyreg extension registry/);
      assert.throws(() => run('8005972e'), /out-of-band buffers/);
      assert.throws(() => run('8002' + '58ffffff7f'), /ends early/);
      assert.throws(() => run('8006'), /protocol 6/);
    });
  });
});
