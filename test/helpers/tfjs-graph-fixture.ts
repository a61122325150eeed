/**
 * A small TF.js graph model written by hand, shaped like Google's exported DeepLab graphs: int32
 * `ImageTensor` -> Cast -> padded bottom/right with the mean pixel up to a crop size (129 x 129 here,
 * computed from the input's shape as DeepLab's export does) -> (x - 127.5) / 127.5 -> a 3x3 stride-2 SAME Conv2D + BiasAdd named `logits/semantic/BiasAdd` ->
 * ResizeBilinear (corners aligned) to the padded size -> ArgMax -> `SemanticPredictions`. Every Const
 * is in the weights manifest (one .bin shard), as the TF.js converter writes them.
 * `expectedLogits` computes the logits of an image with plain loops, independently of tfjs.
 */
import * as fs from 'fs';
import * as path from 'path';
import { RawImage } from '../../lib/contract';

/** The graph pads smaller inputs up to this size: larger than the load's probe (65), as 513 is in Google's graphs. */
export const GRAPH_CROP = 129;

export interface GraphFixture {
  dir: string;
  classes: number;
  /** [dy][dx][cin][cout], TF's HWIO order. */
  weights: Float32Array;
  bias: Float32Array;
  /** Values in the weights manifest. */
  params: number;
}

export interface FixtureOptions {
  classes?: number;
  /** Name of the logits node (default DeepLab's); another name tests detection through ArgMax. */
  logitsName?: string;
  seed?: number;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');
const ints = (v: number[]) => ({ list: { i: v.map(String) } });
const dims = (shape: number[]) => ({ dim: shape.map((d) => ({ size: String(d) })) });

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

export function writeGraphModel(dir: string, o: FixtureOptions = {}): GraphFixture {
  const classes = o.classes ?? 4;
  const logits = o.logitsName ?? 'logits/semantic/BiasAdd';
  const r = rng(o.seed ?? 7);
  const weights = Float32Array.from({ length: 3 * 3 * 3 * classes }, () => r());
  const bias = Float32Array.from({ length: classes }, () => r());
  const consts: { name: string; dtype: 'float32' | 'int32'; shape: number[]; values: number[] | Float32Array }[] = [
    { name: 'crop/size', dtype: 'int32', shape: [2], values: [GRAPH_CROP, GRAPH_CROP] },
    { name: 'crop/zero', dtype: 'int32', shape: [], values: [0] },
    { name: 'crop/zeros', dtype: 'int32', shape: [2], values: [0, 0] },
    { name: 'crop/edge', dtype: 'int32', shape: [1, 2], values: [0, 0] },
    { name: 'crop/axis', dtype: 'int32', shape: [], values: [0] },
    { name: 'pad/value', dtype: 'float32', shape: [], values: [127.5] },
    { name: 'sub/y', dtype: 'float32', shape: [], values: [127.5] },
    { name: 'mul/y', dtype: 'float32', shape: [], values: [1 / 127.5] },
    { name: 'logits/semantic/weights', dtype: 'float32', shape: [3, 3, 3, classes], values: weights },
    { name: 'logits/semantic/biases', dtype: 'float32', shape: [classes], values: bias },
    { name: 'hw/begin', dtype: 'int32', shape: [1], values: [1] },
    { name: 'hw/end', dtype: 'int32', shape: [1], values: [3] },
    { name: 'hw/strides', dtype: 'int32', shape: [1], values: [1] },
    { name: 'ArgMax/dimension', dtype: 'int32', shape: [], values: [3] },
  ];
  const T = (t: string) => ({ type: t });
  const node = (name: string, op: string, input: string[], attr: Record<string, unknown> = {}) => ({ name, op, input, attr });
  const nodes = [
    node('ImageTensor', 'Placeholder', [], { dtype: T('DT_INT32'), shape: { shape: dims([1, -1, -1, 3]) } }),
    ...consts.map((c) => node(c.name, 'Const', [], {
      dtype: T(c.dtype === 'int32' ? 'DT_INT32' : 'DT_FLOAT'),
      value: { tensor: { dtype: c.dtype === 'int32' ? 'DT_INT32' : 'DT_FLOAT', tensorShape: dims(c.shape) } },
    })),
    node('ToFloat', 'Cast', ['ImageTensor'], { SrcT: T('DT_INT32'), DstT: T('DT_FLOAT') }),
    // paddings [[0, 0], [0, max(crop - H, 0)], [0, max(crop - W, 0)], [0, 0]] from the input's shape.
    node('Shape_in', 'Shape', ['ToFloat'], { T: T('DT_FLOAT'), out_type: T('DT_INT32') }),
    node('hw_in', 'StridedSlice', ['Shape_in', 'hw/begin', 'hw/end', 'hw/strides'], { T: T('DT_INT32'), Index: T('DT_INT32') }),
    node('crop/diff', 'Sub', ['crop/size', 'hw_in'], { T: T('DT_INT32') }),
    node('crop/more', 'Maximum', ['crop/diff', 'crop/zero'], { T: T('DT_INT32') }),
    node('crop/hw', 'Pack', ['crop/zeros', 'crop/more'], { T: T('DT_INT32'), N: { i: '2' }, axis: { i: '1' } }),
    node('pad/paddings', 'ConcatV2', ['crop/edge', 'crop/hw', 'crop/edge', 'crop/axis'], { T: T('DT_INT32'), Tidx: T('DT_INT32'), N: { i: '3' } }),
    node('pad', 'PadV2', ['ToFloat', 'pad/paddings', 'pad/value'], { T: T('DT_FLOAT') }),
    node('sub', 'Sub', ['pad', 'sub/y'], { T: T('DT_FLOAT') }),
    node('mul', 'Mul', ['sub', 'mul/y'], { T: T('DT_FLOAT') }),
    node('logits/semantic/Conv2D', 'Conv2D', ['mul', 'logits/semantic/weights'], {
      T: T('DT_FLOAT'), strides: ints([1, 2, 2, 1]), padding: { s: b64('SAME') }, data_format: { s: b64('NHWC') }, dilations: ints([1, 1, 1, 1]),
    }),
    node(logits, 'BiasAdd', ['logits/semantic/Conv2D', 'logits/semantic/biases'], { T: T('DT_FLOAT'), data_format: { s: b64('NHWC') } }),
    node('Shape', 'Shape', ['pad'], { T: T('DT_FLOAT'), out_type: T('DT_INT32') }),
    node('hw', 'StridedSlice', ['Shape', 'hw/begin', 'hw/end', 'hw/strides'], { T: T('DT_INT32'), Index: T('DT_INT32') }),
    node('ResizeBilinear', 'ResizeBilinear', [logits, 'hw'], { T: T('DT_FLOAT'), align_corners: { b: true }, half_pixel_centers: { b: false } }),
    node('ArgMax', 'ArgMax', ['ResizeBilinear', 'ArgMax/dimension'], { T: T('DT_FLOAT'), Tidx: T('DT_INT32'), output_type: T('DT_INT32') }),
    node('SemanticPredictions', 'Identity', ['ArgMax'], { T: T('DT_INT32') }),
  ];
  const shard = Buffer.concat(consts.map((c) => {
    const a = c.dtype === 'int32' ? Int32Array.from(c.values) : Float32Array.from(c.values);
    return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  }));
  const json = {
    format: 'graph-model',
    generatedBy: 'hand (test/helpers/tfjs-graph-fixture)',
    convertedBy: 'none',
    modelTopology: { node: nodes, library: {}, versions: { producer: 27 } },
    weightsManifest: [{ paths: ['group1-shard1of1.bin'], weights: consts.map((c) => ({ name: c.name, shape: c.shape, dtype: c.dtype })) }],
  };
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'group1-shard1of1.bin'), shard);
  fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
  return { dir, classes, weights, bias, params: consts.reduce((n, c) => n + c.values.length, 0) };
}

/**
 * The graph's logits for an image [H, W] by hand, cropped to the cells over the image (cell j on
 * pixel 2j): the graph pads to P = max(H, crop) with 127.5 (0 once normalised), then TF's SAME
 * convolution pads floor(total / 2) before, with zeros.
 */
export function expectedLogits(f: GraphFixture, img: RawImage): { width: number; height: number; data: Float32Array } {
  const C = f.classes;
  const P = [Math.max(img.height, GRAPH_CROP), Math.max(img.width, GRAPH_CROP)];
  const out = P.map((p) => Math.ceil(p / 2));
  const before = P.map((p, i) => Math.floor(Math.max((out[i] - 1) * 2 + 3 - p, 0) / 2));
  const value = (y: number, x: number, k: number): number => {
    if (y < 0 || x < 0 || y >= img.height || x >= img.width) return 0;
    return (img.data[(y * img.width + x) * 3 + k] - 127.5) / 127.5;
  };
  const height = Math.min(out[0], Math.round((img.height - 1) / 2) + 1);
  const width = Math.min(out[1], Math.round((img.width - 1) / 2) + 1);
  const data = new Float32Array(height * width * C);
  for (let j = 0; j < height; j++) {
    for (let i = 0; i < width; i++) {
      for (let c = 0; c < C; c++) {
        let sum = f.bias[c];
        for (let dy = 0; dy < 3; dy++) {
          for (let dx = 0; dx < 3; dx++) {
            for (let k = 0; k < 3; k++) sum += value(2 * j + dy - before[0], 2 * i + dx - before[1], k) * f.weights[((dy * 3 + dx) * 3 + k) * C + c];
          }
        }
        data[(j * width + i) * C + c] = sum;
      }
    }
  }
  return { width, height, data };
}

export function testImage(width: number, height: number, seed = 3): RawImage {
  const r = rng(seed);
  return { width, height, channels: 3, data: Uint8Array.from({ length: width * height * 3 }, () => Math.floor((r() + 0.5) * 256)) };
}
