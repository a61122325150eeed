/**
 * The flow of the reliability suite, written by hand as a user would write it:
 *
 *   POST /seg  (image body) ─────────────┐
 *   POST /eval (JSON {image, groundTruth}, base64) ─ decode ─┤
 *                                         ▼
 *     deeplab-infer ─▶ msc-fusion ─▶ upsample ─▶ dense-crf ─▶ seg-render ─▶ no ground truth? ─▶ 200 PNG
 *                                                      └──▶ ground truth? ─▶ miou-eval ─▶ 200 JSON
 *     catch ─▶ code DEEPLAB_DROPPED / DEEPLAB_BUSY ─▶ 503,  anything else ─▶ 400
 *
 * Every answer goes through "answer once" (a request answered already is not answered again) to
 * the http response node. With `tapEveryStage` every stage's output is also wired to a function
 * node that drops it (the fan-out a user makes with debug wires): Node-RED clones each message
 * once more per stage.
 */
export interface FlowOptions {
  queueSize?: number;
  queuePolicy?: 'drop-oldest' | 'drop-newest' | 'wait';
  tapEveryStage?: boolean;
  /** deeplab-infer's N (longest side), small so that the random-weights model is fast. */
  size?: number;
}

export const TAB = 'rel-tab';

export function reliabilityFlow(o: FlowOptions = {}): Record<string, unknown>[] {
  const z = TAB;
  const tap = o.tapEveryStage ? ['rel-tap'] : [];
  let y = 60;
  const at = () => ({ x: 200, y: (y += 50) });
  return [
    { id: z, type: 'tab', label: 'reliability', disabled: false, info: 'the reliability suite (test/reliability)' },
    { id: 'rel-model', type: 'deeplab-model', name: 'tiny v3+ (random weights)', variant: 'v3plus', backbone: 'mobilenetv2', width: 0.125, classPreset: 'voc21' },
    { id: 'rel-in-seg', type: 'http in', z, name: '', url: '/seg', method: 'post', upload: false, swaggerDoc: '', ...at(), wires: [['rel-infer']] },
    { id: 'rel-in-eval', type: 'http in', z, name: '', url: '/eval', method: 'post', upload: false, swaggerDoc: '', ...at(), wires: [['rel-decode']] },
    {
      id: 'rel-decode', type: 'function', z, name: 'decode JSON body', outputs: 1, noerr: 0, ...at(), wires: [['rel-infer']],
      func: [
        'const b = msg.payload || {};',
        "const bytes = (v) => typeof v === 'string' ? Buffer.from(v, 'base64') : v;",
        'msg.payload = bytes(b.image);',
        'if (b.groundTruth !== undefined) msg.groundTruth = bytes(b.groundTruth);',
        'return msg;',
      ].join('\n'),
    },
    {
      id: 'rel-infer', type: 'deeplab-infer', z, name: '', model: 'rel-model', size: o.size ?? 257, scales: '0.5, 1',
      queueSize: o.queueSize ?? 2, queuePolicy: o.queuePolicy ?? 'drop-oldest', ...at(), wires: [['rel-fuse', ...tap]],
    },
    { id: 'rel-fuse', type: 'msc-fusion', z, name: '', ...at(), wires: [['rel-up', ...tap]] },
    { id: 'rel-up', type: 'deeplab-upsample', z, name: '', ...at(), wires: [['rel-crf', ...tap]] },
    { id: 'rel-crf', type: 'dense-crf', z, name: '', ...at(), wires: [['rel-render', 'rel-has-gt', ...tap]] },
    { id: 'rel-render', type: 'seg-render', z, name: '', model: 'rel-model', ...at(), wires: [['rel-no-gt', ...tap]] },
    {
      id: 'rel-no-gt', type: 'switch', z, name: 'no ground truth', property: 'groundTruth', propertyType: 'msg',
      rules: [{ t: 'null' }], checkall: 'true', repair: false, outputs: 1, ...at(), wires: [['rel-ok-png']],
    },
    {
      id: 'rel-ok-png', type: 'change', z, name: '200 PNG', ...at(), wires: [['rel-answer']],
      rules: [
        { t: 'set', p: 'statusCode', pt: 'msg', to: '200', tot: 'num' },
        { t: 'set', p: 'headers', pt: 'msg', to: '{"content-type":"image/png"}', tot: 'json' },
      ],
    },
    {
      id: 'rel-has-gt', type: 'switch', z, name: 'ground truth?', property: 'groundTruth', propertyType: 'msg',
      rules: [{ t: 'nnull' }], checkall: 'true', repair: false, outputs: 1, ...at(), wires: [['rel-eval']],
    },
    { id: 'rel-eval', type: 'miou-eval', z, name: '', ...at(), wires: [['rel-ok-json'], []] },
    {
      id: 'rel-ok-json', type: 'change', z, name: '200 JSON', ...at(), wires: [['rel-answer']],
      rules: [{ t: 'set', p: 'statusCode', pt: 'msg', to: '200', tot: 'num' }],
    },
    { id: 'rel-catch', type: 'catch', z, name: '', scope: null, uncaught: false, ...at(), wires: [['rel-why']] },
    {
      id: 'rel-why', type: 'switch', z, name: 'dropped or refused?', property: 'error.code', propertyType: 'msg',
      rules: [{ t: 'eq', v: 'DEEPLAB_DROPPED', vt: 'str' }, { t: 'eq', v: 'DEEPLAB_BUSY', vt: 'str' }, { t: 'else' }],
      checkall: 'false', repair: false, outputs: 3, ...at(), wires: [['rel-503'], ['rel-503'], ['rel-400']],
    },
    {
      id: 'rel-503', type: 'change', z, name: '503', ...at(), wires: [['rel-answer']],
      rules: [
        { t: 'set', p: 'statusCode', pt: 'msg', to: '503', tot: 'num' },
        { t: 'set', p: 'payload', pt: 'msg', to: 'error', tot: 'msg' },
      ],
    },
    {
      id: 'rel-400', type: 'change', z, name: '400', ...at(), wires: [['rel-answer']],
      rules: [
        { t: 'set', p: 'statusCode', pt: 'msg', to: '400', tot: 'num' },
        { t: 'set', p: 'payload', pt: 'msg', to: 'error', tot: 'msg' },
        { t: 'delete', p: 'headers', pt: 'msg' },
      ],
    },
    {
      id: 'rel-answer', type: 'function', z, name: 'answer once', outputs: 1, noerr: 0, ...at(), wires: [['rel-out']],
      func: [
        '// A request is answered once: a second answer (e.g. an error after the picture was sent) is counted, not sent.',
        'const res = msg.res && msg.res._res;',
        'if (!res || res.headersSent) {',
        "    flow.set('answeredTwice', (flow.get('answeredTwice') || 0) + 1);",
        '    return null;',
        '}',
        'return msg;',
      ].join('\n'),
    },
    { id: 'rel-out', type: 'http response', z, name: '', statusCode: '', headers: {}, ...at(), wires: [] },
    { id: 'rel-in-stats', type: 'http in', z, name: '', url: '/stats', method: 'get', upload: false, swaggerDoc: '', ...at(), wires: [['rel-stats']] },
    {
      id: 'rel-stats', type: 'function', z, name: 'stats', outputs: 1, noerr: 0, ...at(), wires: [['rel-out']],
      func: "msg.payload = { answeredTwice: flow.get('answeredTwice') || 0 };\nreturn msg;",
    },
    { id: 'rel-tap', type: 'function', z, name: 'tap (fan-out)', func: 'return null;', outputs: 1, noerr: 0, ...at(), wires: [[]] },
  ];
}
