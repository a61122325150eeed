/**
 * The editor's validators without a browser, and their agreement with the runtime: every node's
 * .html runs in a sandbox with a stub RED (as the editor would register it), and each value of
 * test/helpers/editor-cases.ts is checked twice: the field's validator refuses it with a message
 * (or accepts it), and the runtime refuses (or accepts) the same property in a deployed node or in
 * its props reader. Blank values are the one planned difference: the editor asks for a value where
 * the runtime takes the default (flows written by hand may leave any property out).
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import * as vm from 'vm';
import { FIELD_CASES, SELECT_INVALID } from '../helpers/editor-cases';
import { helper } from '../helpers/red';
import { modelConfigFromProps } from '../../nodes/deeplab-model/model-props';
import { shortenMiddle, STATUS_MAX } from '../../nodes/_shared/node-kit';
import { trainSetupFromProps } from '../../nodes/train/train-props';

const ROOT = path.resolve(__dirname, '..', '..', '..');

type Validate = (this: Record<string, unknown>, v: unknown, opt?: unknown) => unknown;
interface Def {
  defaults: Record<string, { value: unknown; validate?: Validate; type?: string }>;
  paletteLabel?: string;
}

/** Every node definition, registered by running the .html scripts as the editor does. */
function loadDefinitions(): Record<string, Def> {
  const defs: Record<string, Def> = {};
  // No dialog is open: a validator reading another field gets the node's own value.
  const $ = () => ({ length: 0 });
  const RED = {
    nodes: { registerType: (t: string, d: Def) => (defs[t] = d) },
    validators: {},
    utils: { validatePropertyExpression: (s: string) => /^[A-Za-z_$][\w$.[\]'"]*$/.test(s) },
  };
  const context = vm.createContext({ RED, $ });
  (context as { window: unknown }).window = context;
  vm.runInContext(fs.readFileSync(path.join(ROOT, 'resources', 'deeplab-editor.js'), 'utf8'), context);
  const nodes = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { 'node-red': { nodes: Record<string, string> } })['node-red'].nodes;
  for (const js of Object.values(nodes)) {
    const html = fs.readFileSync(path.join(ROOT, js.replace(/^dist\//, '').replace(/\.js$/, '.html')), 'utf8');
    for (const m of html.matchAll(/<script type="text\/javascript">([\s\S]*?)<\/script>/g)) vm.runInContext(m[1], context);
  }
  return defs;
}

/** A node as the editor holds it: its defaults, then the given properties. */
function editorNode(def: Def, props: Record<string, unknown>): Record<string, unknown> {
  const node: Record<string, unknown> = {};
  for (const [k, d] of Object.entries(def.defaults)) node[k] = d.value;
  return Object.assign(node, props);
}

const NODE_FILES: Record<string, string> = {
  'deeplab-infer': '../../nodes/deeplab-infer/deeplab-infer',
  'msc-fusion': '../../nodes/msc-fusion/msc-fusion',
  'deeplab-upsample': '../../nodes/upsample/upsample',
  'dense-crf': '../../nodes/dense-crf/dense-crf',
  'seg-render': '../../nodes/seg-render/seg-render',
  'miou-eval': '../../nodes/miou-eval/miou-eval',
  'deeplab-dataset': '../../nodes/dataset/dataset',
  'deeplab-frame': '../../nodes/frame/frame',
  'deeplab-result': '../../nodes/result/result',
};

/** Whether the runtime refuses these properties: the props reader throws, or the deployed node turns red. */
async function runtimeRefuses(type: string, props: Record<string, unknown>): Promise<boolean> {
  if (type === 'deeplab-train') {
    try {
      trainSetupFromProps(props, { userDir: ROOT, nodeId: 'editor-test' });
      return false;
    } catch {
      return true;
    }
  }
  if (type === 'deeplab-model') {
    try {
      modelConfigFromProps(props, ROOT);
      return false;
    } catch {
      return true;
    }
  }
  await helper.load(require(NODE_FILES[type]), [{ id: 'n', type, ...props, wires: [] }]);
  try {
    const status = helper.getNode('n').status.lastCall?.args[0] as { fill?: string } | undefined;
    return status?.fill === 'red';
  } finally {
    await helper.unload();
  }
}

describe('editor validators', function () {
  const defs = loadDefinitions();
  before(async () => {
    await new Promise<void>((r) => helper.startServer(r));
  });
  after(async () => {
    await new Promise<void>((r) => helper.stopServer(r));
  });

  it('every property of every node has a validator that takes undefined (a property older flows lack)', () => {
    const problems: string[] = [];
    for (const [type, def] of Object.entries(defs)) {
      for (const [prop, d] of Object.entries(def.defaults)) {
        // Checkboxes hold booleans and a config node reference (model, broker) is checked by the editor itself.
        if (typeof d.value === 'boolean' || d.type !== undefined || (type === 'deeplab-upsample' || type === 'dense-crf') && prop === 'output') continue;
        if (!d.validate) problems.push(`${type}.${prop}: no validator`);
        else if (d.validate.call(editorNode(def, {}), undefined, {}) !== true) problems.push(`${type}.${prop}: refuses undefined`);
        else if (d.validate.call(editorNode(def, {}), d.value, {}) !== true) problems.push(`${type}.${prop}: refuses its own default ${JSON.stringify(d.value)}`);
      }
    }
    assert.deepEqual(problems, []);
  });

  for (const [type, cases] of Object.entries(FIELD_CASES)) {
    it(`${type}: refuses and accepts the same values as the runtime`, async () => {
      const def = defs[type];
      assert.ok(def, `${type} is registered`);
      const problems: string[] = [];
      for (const c of cases) {
        for (const value of [...c.invalid, ...c.valid]) {
          const bad = c.invalid.includes(value);
          const props = { ...c.given, [c.field]: value };
          const what = `${type}.${c.field} = ${JSON.stringify(value)}`;
          const verdict = def.defaults[c.field].validate?.call(editorNode(def, props), value, {});
          if (bad && (typeof verdict !== 'string' || verdict.length < 10)) problems.push(`${what}: the editor gives no message (${JSON.stringify(verdict)})`);
          if (!bad && verdict !== true) problems.push(`${what}: the editor refuses it: ${verdict}`);
          // Blank is the planned difference (see above); a valid deeplab-infer would load a model.
          if (bad && value.trim() === '') continue;
          if (!bad && type === 'deeplab-infer') continue;
          if ((await runtimeRefuses(type, props)) !== bad) problems.push(`${what}: the runtime ${bad ? 'accepts' : 'refuses'} it`);
        }
      }
      assert.deepEqual(problems, []);
    });
  }

  for (const [type, fields] of Object.entries(SELECT_INVALID)) {
    it(`${type}: selects refuse values that are not among their options, as the runtime does`, async () => {
      const def = defs[type];
      const problems: string[] = [];
      for (const [field, values] of Object.entries(fields)) {
        for (const value of values) {
          const what = `${type}.${field} = ${JSON.stringify(value)}`;
          const verdict = def.defaults[field].validate?.call(editorNode(def, { [field]: value }), value, {});
          if (typeof verdict !== 'string' || verdict.length < 10) problems.push(`${what}: the editor gives no message (${JSON.stringify(verdict)})`);
          if (!(await runtimeRefuses(type, { [field]: value }))) problems.push(`${what}: the runtime accepts it`);
        }
      }
      assert.deepEqual(problems, []);
    });
  }

  it('the shipped examples and the demo flow pass every validator (no deploy warning on import)', () => {
    const files = [
      ...fs.readdirSync(path.join(ROOT, 'examples')).filter((f) => f.endsWith('.json')).map((f) => path.join(ROOT, 'examples', f)),
      path.join(ROOT, 'demo', 'flows.json'),
    ];
    const problems: string[] = [];
    for (const file of files) {
      for (const n of JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>[]) {
        const def = defs[String(n.type)];
        if (!def) continue;
        for (const [prop, d] of Object.entries(def.defaults)) {
          const verdict = d.validate?.call(n, n[prop], {}) ?? true;
          if (verdict !== true) problems.push(`${path.basename(file)}: ${n.type} ${n.id} ${prop} = ${JSON.stringify(n[prop])}: ${verdict}`);
        }
      }
    }
    assert.deepEqual(problems, []);
  });

  it('palette labels are lowercase words with spaces', () => {
    for (const [type, def] of Object.entries(defs)) assert.match(def.paletteLabel ?? '', /^[a-z]+( [a-z]+)*$/, type);
  });
});

describe('status texts', () => {
  it('over 60 characters: shortened in the middle, keeping the start and the end of a path', () => {
    const short = 'ready · deeplab-v2';
    assert.equal(shortenMiddle(short), short);
    const exact = 'x'.repeat(STATUS_MAX);
    assert.equal(shortenMiddle(exact), exact);
    const text = 'config: weights from a directory: no deeplab.json in /home/user/.node-red/models/voc-resnet101-finetuned';
    const s = shortenMiddle(text);
    assert.ok(Array.from(s).length <= STATUS_MAX, s);
    assert.ok(s.startsWith('config: weights from a'), s);
    assert.ok(s.endsWith('/models/voc-resnet101-finetuned'), s);
    assert.ok(s.includes('…'), s);
  });
});
