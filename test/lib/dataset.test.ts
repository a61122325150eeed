import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { isLabelMap } from '../../lib/contract';
import { PathSafetyError, listDataset, loadSample, readFileUnder, resolveUnder, runOrder, seededShuffle } from '../../lib/data/dataset';
import { Pacer } from '../../lib/runtime/pacer';

import { SHARED_DATA as SHARED, sharedData, VOC_SAMPLES as VOC } from '../helpers/shared-data';

const IDS = ['vainf_000', 'vainf_001', 'vainf_008', 'vainf_020', 'vainf_023', 'vainf_060', 'vainf_114', 'vainf_120', 'vainf_166', 'vainf_293', 'vainf_294', 'vainf_417', 'vainf_474', 'vainf_582'];

describe('lib/data/dataset: listing, shuffling, path safety, pacing', () => {
  let tmp: string;
  before(() => {
    tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'deeplab-ds-')));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('lists the 14 real VOC samples of val.txt, each with its mask', async function () {
    sharedData('voc-samples');
    const l = await listDataset(SHARED, 'voc-samples', { split: 'val' });
    assert.equal(l.layout, 'voc');
    assert.deepEqual(l.samples.map((s) => s.id), IDS);
    assert.deepEqual(l.missingMasks, []);
    assert.deepEqual(l.missingImages, []);
    assert.equal(l.samples[7].image, path.join('JPEGImages', 'vainf_120.jpg'));
    assert.equal(l.samples[7].mask, path.join('SegmentationClass', 'vainf_120.png'));
    const s = await loadSample(SHARED, l, l.samples[10], true);
    assert.equal(s.image.subarray(0, 2).toString('hex'), 'ffd8', 'JPEG bytes as stored');
    assert.ok(isLabelMap(s.groundTruth));
    assert.ok([...new Set((s.groundTruth as { data: Uint8Array }).data)].includes(15), 'vainf_294 holds a person');
    const raw = await loadSample(SHARED, l, l.samples[0]);
    assert.ok(Buffer.isBuffer(raw.groundTruth));
    assert.deepEqual(raw.groundTruth, fs.readFileSync(path.join(VOC, 'SegmentationClass', 'vainf_000.png')));
  });

  it('reports ids without a mask or an image, and keeps unmasked ones when asked', async function () {
    sharedData('voc-samples');
    const d = path.join(tmp, 'voc');
    for (const sub of ['JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation']) fs.mkdirSync(path.join(d, sub), { recursive: true });
    for (const id of IDS.slice(0, 3)) fs.copyFileSync(path.join(VOC, 'JPEGImages', `${id}.jpg`), path.join(d, 'JPEGImages', `${id}.jpg`));
    for (const id of IDS.slice(0, 2)) fs.copyFileSync(path.join(VOC, 'SegmentationClass', `${id}.png`), path.join(d, 'SegmentationClass', `${id}.png`));
    fs.writeFileSync(path.join(d, 'ImageSets/Segmentation/val.txt'), `${IDS.slice(0, 3).join('\n')}\nnot_here\n\n`);
    const l = await listDataset(tmp, 'voc');
    assert.deepEqual(l.samples.map((s) => s.id), IDS.slice(0, 2));
    assert.deepEqual(l.missingMasks, [IDS[2]]);
    assert.deepEqual(l.missingImages, ['not_here']);
    const k = await listDataset(tmp, 'voc', { keepUnmasked: true });
    assert.equal(k.samples.length, 3);
    assert.equal(k.samples[2].mask, undefined);
    assert.equal((await loadSample(tmp, k, k.samples[2])).groundTruth, undefined);
    await assert.rejects(listDataset(tmp, 'voc', { split: 'train' }), /split file .*train.txt not found/);
    await assert.rejects(listDataset(tmp, 'voc', { split: '../x' }), /plain file name/);
  });

  it('matches two folders of images and masks by base name', async () => {
    const d = path.join(tmp, 'pairs');
    fs.mkdirSync(path.join(d, 'img'), { recursive: true });
    fs.mkdirSync(path.join(d, 'gt'), { recursive: true });
    for (const n of ['b.jpg', 'a.png', 'c.jpeg', 'notes.txt']) fs.writeFileSync(path.join(d, 'img', n), n);
    for (const n of ['a.png', 'b.png', 'z.png']) fs.writeFileSync(path.join(d, 'gt', n), n);
    const l = await listDataset(tmp, 'pairs', { imagesDir: 'img', masksDir: 'gt' });
    assert.equal(l.layout, 'folders');
    assert.deepEqual(l.samples.map((s) => [s.id, s.image, s.mask]), [['a', path.join('img', 'a.png'), path.join('gt', 'a.png')], ['b', path.join('img', 'b.jpg'), path.join('gt', 'b.png')]]);
    assert.deepEqual(l.missingMasks, ['c']);
  });

  it('refuses paths that escape the root: .., absolute elsewhere, symbolic links out', async () => {
    const root = path.join(tmp, 'root');
    const outside = path.join(tmp, 'outside');
    fs.mkdirSync(path.join(root, 'in'), { recursive: true });
    fs.mkdirSync(outside, { recursive: true });
    fs.writeFileSync(path.join(outside, 'secret.txt'), 'secret');
    fs.writeFileSync(path.join(root, 'in', 'ok.txt'), 'ok');
    fs.symlinkSync(outside, path.join(root, 'link-out'));
    fs.symlinkSync(path.join(root, 'in'), path.join(root, 'link-in'));
    assert.equal((await readFileUnder(root, 'in/ok.txt')).toString(), 'ok');
    assert.equal((await readFileUnder(root, path.join(root, 'in', 'ok.txt'))).toString(), 'ok', 'absolute inside is fine');
    assert.equal((await readFileUnder(root, 'link-in/ok.txt')).toString(), 'ok', 'a link that stays inside is fine');
    await assert.rejects(resolveUnder(root, '../outside/secret.txt'), (e: Error) => e instanceof PathSafetyError && /outside the allowed root/.test(e.message));
    await assert.rejects(resolveUnder(root, 'in/../../outside'), PathSafetyError);
    await assert.rejects(resolveUnder(root, path.join(outside, 'secret.txt')), /outside the allowed root/);
    await assert.rejects(resolveUnder(root, 'link-out/secret.txt'), /through a symbolic link/);
    await assert.rejects(listDataset(root, 'link-out'), /through a symbolic link/);
    await assert.rejects(resolveUnder(root, 'in/nope.txt'), /does not exist/);
  });

  it('shuffles reproducibly by seed and limits the run', () => {
    const items = Array.from({ length: 20 }, (_, i) => i);
    const a = seededShuffle(items, 42);
    assert.deepEqual(seededShuffle(items, 42), a, 'same seed, same order');
    assert.notDeepEqual(seededShuffle(items, 43), a);
    assert.notDeepEqual(a, items);
    assert.deepEqual([...a].sort((x, y) => x - y), items, 'a permutation');
    assert.deepEqual(runOrder(items, { limit: 3 }), [0, 1, 2]);
    assert.deepEqual(runOrder(items, { shuffle: true, seed: 42, limit: 5 }), a.slice(0, 5));
  });

  it('paces a run: a window in flight, one more per acknowledgement, done when all came back', () => {
    const p = new Pacer(5, 2);
    assert.deepEqual(p.start(), [0, 1]);
    assert.equal(p.pending, 2);
    assert.deepEqual(p.ack(), [2]);
    assert.deepEqual(p.ack(), [3]);
    assert.deepEqual(p.ack(), [4]);
    assert.ok(p.allSent && !p.done);
    assert.deepEqual(p.ack(), []);
    assert.deepEqual(p.ack(), []);
    assert.ok(p.done);
    assert.deepEqual(p.ack(), [], 'an extra acknowledgement sends nothing');
    assert.deepEqual(p.start(), [0, 1], 'restart from the beginning');
    p.stop();
    assert.deepEqual(p.ack(), []);
    assert.ok(!p.done);
    const t = new Pacer(2, 1);
    t.start();
    assert.equal(new Pacer(0, 3).start().length, 0);
    const q = new Pacer(3, 1);
    assert.deepEqual(q.start(true), []);
    assert.deepEqual([q.tick(), q.tick(), q.tick(), q.tick()], [0, 1, 2, null], 'interval ticks ignore the window');
  });
});
