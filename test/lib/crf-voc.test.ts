import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { decodeImage } from '../../lib/data/image';
import { decodeLabelImage } from '../../lib/data/labels';
import { denseCrf } from '../../lib/crf/dense-crf';
import { closeCrfHelper } from '../../lib/crf/parallel';
import { CRF_PRESETS, CrfPresetName } from '../../lib/crf/params';
import { syntheticScores } from '../../lib/crf/synthetic';
import { argmaxScoreMap } from '../../lib/ops/score-map';
import { sharedData } from '../helpers/shared-data';
import { Confusion } from './crf-fixtures';

/**
 * On real VOC photographs (513x513) the CRF must raise pixel accuracy and mIoU over network-like
 * unaries: logits made from the ground truth on a stride-16 grid with seeded noise (the classes
 * present plus two confusable ones), bilinearly upsampled (blurred boundaries), plus per-pixel
 * noise. Over all 14 samples every preset improved both figures; two images keep this fast.
 */
const IDS = ['vainf_294', 'vainf_060']; // car + person; bird

describe('lib/crf: real VOC images, noisy unaries', function () {
  this.timeout(600_000);
  after(() => closeCrfHelper());

  const cases: [CrfPresetName, string[]][] = [['deeplab-v2', IDS], ['densecrf-example', IDS.slice(0, 1)]];
  for (const [preset, ids] of cases) {
    it(`${preset}: raises pixel accuracy and mIoU (${ids.join(', ')})`, async function () {
      const vocDir = sharedData('voc-samples');
      const before = new Confusion(21);
      const after = new Confusion(21);
      for (const [i, id] of ids.entries()) {
        const image = await decodeImage(fs.readFileSync(path.join(vocDir, 'JPEGImages', `${id}.jpg`)));
        const gt = await decodeLabelImage(fs.readFileSync(path.join(vocDir, 'SegmentationClass', `${id}.png`)));
        assert.equal(gt.width, image.width);
        const map = syntheticScores(gt, 21, { seed: 7 + i, stride: 16, confidence: 4, cellNoise: 1.5, pixelNoise: 0.5, distractors: 2 });
        before.add(argmaxScoreMap(map), gt);
        const r = denseCrf(map, image, CRF_PRESETS[preset]);
        after.add(argmaxScoreMap(r.probs), gt);
      }
      const [a0, a1, m0, m1] = [before.accuracy(), after.accuracy(), before.miou(), after.miou()];
      assert.ok(a1 > a0 + 0.01, `pixel accuracy ${a0.toFixed(4)} -> ${a1.toFixed(4)}`);
      assert.ok(m1 > m0 + 0.01, `mIoU ${m0.toFixed(4)} -> ${m1.toFixed(4)}`);
    });
  }
});
