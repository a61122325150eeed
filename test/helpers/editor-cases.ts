/** What the editor's validators must refuse and accept, per node type and field. */

export interface FieldCase {
  field: string;
  invalid: string[];
  valid: string[];
  given?: Record<string, string>;
}

/**
 * Values each dialog must refuse (marked red, with the validator's message) and accept, for the
 * values the editor issue lists; `given` sets other fields first (a select that shows the field).
 * The browser test (test/e2e/editor.test.ts) types them into the dialogs; the validator test
 * (test/nodes/editor-validators.test.ts) runs the same validators without a browser and checks
 * that the runtime refuses and accepts the same values.
 */
export const FIELD_CASES: Record<string, FieldCase[]> = {
  'deeplab-train': [
    { field: 'maxIter', invalid: ['abc', '0', '2.5'], valid: ['', '1000'] },
    { field: 'lr', invalid: ['-1', '0', 'fast'], valid: ['', '0.001'] },
    { field: 'batchSize', invalid: ['0'], valid: ['', '2'] },
    { field: 'keep', invalid: ['-2', ''], valid: ['3'] },
    { field: 'momentum', invalid: ['1'], valid: ['0.9'] },
    { field: 'scaleMax', given: { scaleMin: '1.5' }, invalid: ['1', '9'], valid: ['2', ''] },
    { field: 'synClasses', given: { source: 'synthetic' }, invalid: ['1', '9'], valid: ['', '4'] },
    { field: 'dir', given: { source: 'folder' }, invalid: [''], valid: ['VOCdevkit/VOC2012'] },
    { field: 'synSize', given: { source: 'synthetic' }, invalid: ['4', '5000', '96.5'], valid: ['', '161'] },
    { field: 'lrPower', invalid: ['-1', 'steep'], valid: ['', '0.9'] },
    { field: 'warmupIter', invalid: ['-1', '2.5'], valid: ['', '0', '10'] },
    { field: 'headLrMult', invalid: ['-10'], valid: ['', '1'] },
    // Selects: only their options can be chosen in a dialog (SELECT_INVALID has values a hand-written flow may hold).
    { field: 'preset', invalid: [], valid: ['auto', 'small-data', 'v2', 'v3plus'] },
    { field: 'synSet', given: { source: 'synthetic' }, invalid: [], valid: ['hard-shapes', 'shapes'] },
    { field: 'optimizer', invalid: [], valid: ['adam', 'sgd', 'auto'] },
    { field: 'classWeights', invalid: [], valid: ['sqrt-inverse', 'none', 'auto'] },
    { field: 'initFrom', invalid: [], valid: ['scratch', 'model'] },
  ],
  'seg-render': [
    { field: 'opacity', given: { mode: 'overlay' }, invalid: ['7', '-0.1', ''], valid: ['0', '0.5', '1'] },
    { field: 'quality', given: { format: 'jpeg' }, invalid: ['500', '0', '80.5'], valid: ['90'] },
  ],
  'deeplab-infer': [
    { field: 'queueSize', invalid: ['-5', '1.5'], valid: ['0', '4'] },
    { field: 'scales', invalid: ['big', '0', '0.5, 5'], valid: ['', '1', '0.5, 0.75, 1'] },
    { field: 'maxPixels', invalid: ['0'], valid: ['1000000'] },
    { field: 'size', given: { resizePolicy: 'valid' }, invalid: ['20', '5000'], valid: ['513'] },
    { field: 'memoryBudget', invalid: ['0', 'lots'], valid: ['', '256'] },
  ],
  'deeplab-upsample': [
    { field: 'height', given: { sizeFrom: 'fixed' }, invalid: ['-10', '0', 'tall'], valid: ['480'] },
    { field: 'width', given: { sizeFrom: 'fixed' }, invalid: ['20000'], valid: ['640'] },
  ],
  'miou-eval': [
    { field: 'ignoreIndex', given: { classes: '21' }, invalid: ['-1', '256', '5'], valid: ['255'] },
    { field: 'classes', invalid: ['0', '300'], valid: ['21'] },
    { field: 'customNames', given: { labels: 'custom' }, invalid: [''], valid: ['background, road'] },
    { field: 'reportEvery', invalid: ['-1'], valid: ['0', '50'] },
  ],
  'deeplab-dataset': [
    { field: 'limit', invalid: ['-3', '1.5'], valid: ['', '0', '10'] },
    { field: 'window', given: { pacing: 'feedback' }, invalid: ['0'], valid: ['2'] },
    { field: 'interval', given: { pacing: 'interval' }, invalid: ['0'], valid: ['250'] },
  ],
  'dense-crf': [
    { field: 'iterations', given: { preset: 'custom' }, invalid: ['2000', '-1', '2.5'], valid: ['5'] },
    { field: 'thetaAlpha', given: { preset: 'custom' }, invalid: ['0'], valid: ['80'] },
    { field: 'w1', given: { preset: 'custom' }, invalid: ['-1'], valid: ['0', '4'] },
  ],
  'deeplab-frame': [
    { field: 'quality', given: { mode: 'encode' }, invalid: ['0', '101', '85.5', 'high'], valid: ['1', '85', '100'] },
    { field: 'maxMegapixels', given: { mode: 'decode' }, invalid: ['0', '-1', '1001', 'big'], valid: ['0.5', '40', '1000'] },
    { field: 'window', given: { mode: 'decode' }, invalid: ['-1', '2.5', '100001'], valid: ['0', '4'] },
    { field: 'camera', given: { mode: 'encode' }, invalid: ['cam/1', 'cam+', '#', 'x'.repeat(129)], valid: ['', 'cam-1'] },
    { field: 'topicPrefix', invalid: ['a/+/b', 'frames/#', '/frames', 'frames/', 'a//b'], valid: ['', 'deeplab/frames', 'site1/frames'] },
  ],
  'deeplab-result': [
    { field: 'topicPrefix', invalid: ['results/+', '#', 'results/'], valid: ['', 'deeplab/results'] },
  ],
  'msc-fusion': [{ field: 'memoryBudget', invalid: ['-1'], valid: ['', '100'] }],
  'deeplab-model': [
    { field: 'seed', given: { weightsSource: 'random' }, invalid: ['1.5', 'x'], valid: ['', '7'] },
    { field: 'width', given: { weightsSource: 'random' }, invalid: ['0', '5'], valid: ['0.25', '1'] },
    { field: 'customClasses', given: { weightsSource: 'random', classPreset: 'custom' }, invalid: ['', '  '], valid: ['background, cat'] },
  ],
};

/**
 * Select values no dialog offers but a flow written by hand may hold: the validator and the
 * runtime must both refuse them (test/nodes/editor-validators.test.ts; no browser can choose them).
 */
export const SELECT_INVALID: Record<string, Record<string, string[]>> = {
  'deeplab-train': {
    preset: ['fast', 'v3'],
    synSet: ['easy'],
    optimizer: ['rmsprop'],
    classWeights: ['inverse'],
    initFrom: ['imagenet'],
  },
};
