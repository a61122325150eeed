import { strict as assert } from 'assert';
import { normalizeSpec } from '../../lib/models/deeplab';
import { PREPROCESSINGS } from '../../lib/models/preprocess';
import { VOC21_NAMES } from '../../lib/data/palette';
import {
  CATALOGUE_PREPROCESSINGS,
  findPublished,
  listPublished,
  searchPublished,
  validateEntry,
  WEIGHT_LAYOUTS,
} from '../../lib/weights/catalogue';

function https(u: string | undefined, what: string): void {
  assert.ok(u, `${what} missing`);
  assert.equal(new URL(u).protocol, 'https:', `${what} ${u} is not https`);
}

describe('lib/weights/catalogue: published DeepLab checkpoints', () => {
  it('every entry validates: unique ids, https urls, specs that normalise, one class name per class, checksums', () => {
    const all = listPublished();
    assert.ok(all.length >= 15, `expected the full catalogue, got ${all.length} entries`);
    assert.equal(new Set(all.map((e) => e.id)).size, all.length, 'ids are unique');
    assert.equal(new Set(all.map((e) => e.fileName)).size, all.length, 'file names in the cache are unique');
    for (const e of all) {
      const spec = normalizeSpec(e.spec);
      assert.equal(e.classNames.length, spec.classes, `${e.id}: class names`);
      assert.ok(PREPROCESSINGS.includes(e.preprocessing), `${e.id}: preprocessing`);
      assert.ok(WEIGHT_LAYOUTS.includes(e.layout), `${e.id}: layout`);
      https(e.source, `${e.id} source`);
      if (e.url) {
        https(e.url, `${e.id} url`);
        for (const m of e.mirrors ?? []) https(m, `${e.id} mirror`);
        assert.ok(e.sha256 || e.hashPrefix || e.unverified, `${e.id}: a url entry needs a checksum or the reason none is published`);
        assert.equal(e.manual, undefined);
      } else {
        assert.ok(e.manual, `${e.id}: no url and no manual instructions`);
        https(e.manual.page, `${e.id} manual page`);
        assert.ok(e.fileName && !e.fileName.includes('/'), `${e.id}: a manual entry names the file to place`);
      }
      assert.ok(e.score.value > 0 && e.score.value <= 100, `${e.id}: score`);
      assert.ok(Object.isFrozen(e) && Object.isFrozen(e.spec) && Object.isFrozen(e.classNames), `${e.id}: frozen`);
    }
  });

  it('torchvision file names carry the sha256 prefix that torch hub checks', () => {
    const tv = listPublished().filter((e) => e.url?.startsWith('https://download.pytorch.org/models/'));
    assert.equal(tv.length, 5);
    for (const e of tv) {
      const m = /-([0-9a-f]+)\.pth$/.exec(e.fileName);
      assert.ok(m, e.fileName);
      assert.equal(e.hashPrefix, m[1], e.id);
    }
  });

  it('records the published scores and what each checkpoint needs', () => {
    const r101 = findPublished('torchvision/deeplabv3_resnet101_coco');
    assert.equal(r101.score.value, 67.4);
    assert.deepEqual(r101.classNames.slice(1), VOC21_NAMES.slice(1));
    assert.equal(r101.preprocessing, 'imagenet');
    assert.deepEqual(normalizeSpec(r101.spec), normalizeSpec({ variant: 'v3', backbone: 'resnet101', classes: 21, outputStride: 8, layout: 'torchvision', aux: true }));
    assert.equal(findPublished('torchvision/deeplabv3_resnet50_coco').score.value, 66.4);
    const voc = findPublished('kazuto1011/deeplabv2_resnet101_msc_vocaug');
    assert.equal(voc.preprocessing, 'caffe-bgr');
    assert.deepEqual([voc.score.value, voc.extraScores?.[0].value], [76.65, 77.93]);
    const stuff = findPublished('kazuto1011/deeplabv2_resnet101_msc_cocostuff164k');
    assert.equal(stuff.classNames.length, 182);
    assert.deepEqual([stuff.classNames[0], stuff.classNames[181]], ['person', 'wood']);
    assert.equal(findPublished('jfzhang95/deeplabv3plus_resnet101_voc').score.value, 78.43);
    assert.equal(findPublished('tfjs/deeplab_ade20k').classNames.length, 151);
    for (const e of listPublished().filter((x) => x.manual)) assert.ok(['jfzhang95', 'isht7'].includes(e.id.split('/')[0]), e.id);
  });

  it('knows the names of the preprocessings without loading tfjs', () => {
    assert.deepEqual([...CATALOGUE_PREPROCESSINGS].sort(), [...PREPROCESSINGS].sort());
  });

  it('findPublished names close ids for an unknown one', () => {
    assert.throws(() => findPublished('torchvision/deeplabv3_resnet10_coco'), /unknown published weights .*did you mean .*torchvision\/deeplabv3_resnet101_coco/);
    assert.throws(() => findPublished('deeplabv3_resnet50_coco'), /torchvision\/deeplabv3_resnet50_coco/);
    assert.throws(() => findPublished('zzzz'), /known ids: .*tfjs\/deeplab_pascal/);
  });

  it('searchPublished matches every word, case-insensitively', () => {
    assert.equal(searchPublished('').length, listPublished().length);
    const ids = (q: string) => searchPublished(q).map((e) => e.id);
    assert.deepEqual(ids('Cityscapes'), ['tfjs/deeplab_cityscapes']);
    assert.deepEqual(ids('v3plus mobilenetv2 voc'), ['jfzhang95/deeplabv3plus_mobilenetv2_voc']);
    assert.ok(ids('coco-stuff').every((id) => id.startsWith('kazuto1011/')));
    assert.deepEqual(ids('no such checkpoint'), []);
  });

  it('validateEntry refuses malformed entries with the reason', () => {
    const good = {
      id: 'x/y', title: 't', url: 'https://example.org/a-0123abcd.pth', hashPrefix: '0123abcd', format: 'pytorch', layout: 'torchvision',
      spec: { variant: 'v3', backbone: 'resnet50', classes: 2, outputStride: 16 }, dataset: 'd', classNames: ['a', 'b'],
      preprocessing: 'imagenet', score: { metric: 'mIoU', value: 50, on: 'val' }, license: 'MIT', source: 'https://example.org',
    };
    assert.equal(validateEntry(good).fileName, 'a-0123abcd.pth');
    assert.throws(() => validateEntry({ ...good, url: 'http://example.org/a.pth' }), /must be https/);
    assert.throws(() => validateEntry({ ...good, hashPrefix: undefined }), /needs sha256, hashPrefix/);
    assert.throws(() => validateEntry({ ...good, classNames: ['a'] }), /1 class names for 2 classes/);
    assert.throws(() => validateEntry({ ...good, classNames: ['@nope', 'b'] }), /unknown class set "@nope"/);
    assert.throws(() => validateEntry({ ...good, manual: { page: 'https://e.org', instructions: 'i' } }), /either a url or manual/);
    assert.throws(() => validateEntry({ ...good, layout: 'caffe' }), /layout must be one of/);
    assert.throws(() => validateEntry({ ...good, fileName: '../escape.pth' }), /relative path inside the cache/);
    assert.throws(() => validateEntry({ ...good, spec: { ...good.spec, outputStride: 32 } }), /outputStride must be 8 or 16/);
  });
});
