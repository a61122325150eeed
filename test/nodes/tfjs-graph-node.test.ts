/**
 * deeplab-infer with a deeplab-model config node whose weights are a TF.js graph model: logits
 * ScoreMaps at the graph's stride come out (values computed by hand), and upsample takes them on.
 */
import { strict as assert } from 'assert';
import * as path from 'path';
import { catchNode, helper, nextMessage, statusLog } from '../helpers/red';
import { isLabelMap, RawImage, ScoreMap, scoreValues } from '../../lib/contract';
import { expectedLogits, GraphFixture, testImage, writeGraphModel } from '../helpers/tfjs-graph-fixture';

const modelNode = require('../../nodes/deeplab-model/deeplab-model');
const inferNode = require('../../nodes/deeplab-infer/deeplab-infer');
const upsampleNode = require('../../nodes/upsample/upsample');
const ALL = [modelNode, inferNode, upsampleNode, catchNode];

const OUT = path.resolve(__dirname, '../../../test-output/tfjs-graph-node');

describe('nodes: deeplab-infer on a TF.js graph model', function () {
  this.timeout(600_000);
  let f: GraphFixture;
  before(() => {
    f = writeGraphModel(path.join(OUT, 'graph'));
  });
  afterEach(async () => {
    await helper.unload();
  });

  it('sends logits at the graph\'s stride, which upsample turns into probabilities and labels', async () => {
    const flow = [
      { id: 'mg', type: 'deeplab-model', weightsSource: 'tfjs-graph', graphModel: f.dir, classPreset: 'custom', customClasses: 'background, road, tree, sky' },
      { id: 'inf', type: 'deeplab-infer', model: 'mg', resizePolicy: 'none', wires: [['up', 'logits']] },
      { id: 'up', type: 'deeplab-upsample', result: 'both', wires: [['probs']] },
      { id: 'logits', type: 'helper' }, { id: 'probs', type: 'helper' },
    ];
    await helper.load(ALL, flow);
    const got = nextMessage(helper.getNode('logits'));
    const up = nextMessage(helper.getNode('probs'));
    const image: RawImage = testImage(7, 9);
    helper.getNode('inf').receive({ payload: image });
    const m = await got;
    const map = m.payload as ScoreMap;
    const want = expectedLogits(f, image);
    assert.deepEqual([map.width, map.height, map.classes, map.kind, map.stride], [want.width, want.height, 4, 'logits', 2]);
    const logits = scoreValues(map)!;
    for (let i = 0; i < want.data.length; i++) assert.ok(Math.abs(logits[i] - want.data[i]) < 1e-4, `logit ${i}: ${logits[i]} vs ${want.data[i]}`);
    assert.deepEqual(m.classNames, ['background', 'road', 'tree', 'sky']);
    const p = await up;
    const probs = p.payload as ScoreMap;
    assert.deepEqual([probs.width, probs.height, probs.classes, probs.kind], [7, 9, 4, 'probs']);
    assert.ok(isLabelMap(p.labels));
  });

  it('class names that do not fit the graph turn the status red and reach the Catch node', async () => {
    const flow = [
      { id: 'mg', type: 'deeplab-model', weightsSource: 'tfjs-graph', graphModel: f.dir, classPreset: 'voc21' },
      { id: 'inf', type: 'deeplab-infer', model: 'mg', wires: [['o']] },
      { id: 'c', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
      { id: 'o', type: 'helper' }, { id: 'caught', type: 'helper' },
    ];
    await helper.load(ALL, flow);
    const log = statusLog(helper.getNode('inf'));
    const caught = nextMessage(helper.getNode('caught'));
    helper.getNode('inf').receive({ payload: testImage(7, 9) });
    assert.match(((await caught).error as { message: string }).message, /logits have 4 classes but the model config names 21/);
    assert.ok(log.some((s) => s.fill === 'red'));
  });
});
