/**
 * A layout: how one reference implementation names its parameters, and what network of ours
 * those parameters make. Renaming is a list of rules (a pattern over the source key and our
 * name for it); the values are converted by what our parameter is, so every layout shares one
 * conversion (PyTorch conv kernels [out, in, kh, kw] -> ours [kh, kw, in, out]).
 */
import { ModelSpec } from '../../models/deeplab';
import { Preprocessing } from '../../models/preprocess';

export type LayoutName = 'torchvision' | 'torchvision-backbone' | 'kazuto1011' | 'deeplab-resnet' | 'jfzhang95' | 'vgg-largefov';

/** A tensor as a checkpoint reader hands it over: contiguous row-major float32. */
export interface SourceTensor {
  shape: number[];
  data: Float32Array;
}

export type SourceTensors = Map<string, SourceTensor>;

/** One renaming rule: a source key pattern and our name (with $1.. groups), or null to ignore the key. */
export type Rule = [RegExp, string | ((m: RegExpMatchArray) => string | null | undefined) | null];

export interface Layout {
  name: LayoutName;
  /** Where the names come from, for messages and the README. */
  source: string;
  preprocessing: Preprocessing;
  /** Whether the keys look like this layout (auto-detection; the first layout that says yes wins). */
  detect(keys: string[]): boolean;
  /** The network the tensors make (variant, backbone, classes, width, blocks); the caller may override output stride. */
  spec(t: SourceTensors): Partial<ModelSpec>;
  /** Renaming rules, first match wins (some layouts need a look at the tensors to choose). */
  rules: (t: SourceTensors) => Rule[];
  /** Only initialises part of a network (ImageNet backbones): loading it for inference is refused. */
  partial?: boolean;
}

/** Our name for a source key; null when the layout ignores it; undefined when it is not part of the layout. */
export function renameKey(rules: Rule[], key: string): string | null | undefined {
  for (const [re, to] of rules) {
    const m = key.match(re);
    if (!m) continue;
    if (to === null) return null;
    return typeof to === 'function' ? to(m) : key.replace(re, to);
  }
  return undefined;
}

/** A BN module's parameters: PyTorch's weight/bias become our gamma/beta; its batch counter is dropped. */
export function bnRules(from: string, to: string | ((m: RegExpMatchArray) => string)): Rule[] {
  const target = (suffix: string): Rule[1] => (typeof to === 'string' ? `${to}.${suffix}` : (m) => `${to(m)}.${suffix}`);
  return [
    [new RegExp(`^${from}\\.weight$`), target('gamma')],
    [new RegExp(`^${from}\\.bias$`), target('beta')],
    [new RegExp(`^${from}\\.running_mean$`), target('running_mean')],
    [new RegExp(`^${from}\\.running_var$`), target('running_var')],
    [new RegExp(`^${from}\\.num_batches_tracked$`), null],
  ];
}

export function tensorOf(t: SourceTensors, key: string, layout: string): SourceTensor {
  const v = t.get(key);
  if (!v) throw new Error(`the checkpoint has no "${key}", which every ${layout} checkpoint has`);
  return v;
}

/** Number of blocks per ResNet layer, from the highest block index seen under each layer's prefix (indices from `first`). */
export function countBlocks(keys: string[], layerPrefix: (layer: number) => RegExp, first = 0): [number, number, number, number] {
  const counts = [1, 2, 3, 4].map((l) => {
    let n = 0;
    for (const k of keys) {
      const m = k.match(layerPrefix(l));
      if (m) n = Math.max(n, Number(m[1]) + 1 - first);
    }
    return n;
  });
  return counts as [number, number, number, number];
}

/** The ResNet depth whose published block counts these are; other counts keep depth 101 with explicit blocks. */
export function resnetFromBlocks(blocks: [number, number, number, number]): Pick<ModelSpec, 'backbone'> & { blocks?: [number, number, number, number] } {
  const key = blocks.join(',');
  if (key === '3,4,6,3') return { backbone: 'resnet50' };
  if (key === '3,4,23,3') return { backbone: 'resnet101' };
  if (blocks.some((b) => b < 1)) throw new Error(`a ResNet needs at least one block per layer, the checkpoint has ${key}`);
  return { backbone: 'resnet101', blocks };
}
