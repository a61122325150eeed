/**
 * Importing another implementation's weights: a state dict (names -> tensors) is renamed by its
 * layout, converted to our tensor layout and written as our saved format, with the spec the
 * tensors imply. Nothing here knows file formats: the checkpoint readers hand over tensors.
 */
import { ModelSpec, normalizeSpec } from '../models/deeplab';
import { Preprocessing } from '../models/preprocess';
import { FORMAT_NAME, FORMAT_VERSION, SavedWeights, WeightEntry } from './format';
import { detectLayout, Layout, LayoutName, layoutByName } from './layouts';
import { renameKey, SourceTensor, SourceTensors } from './layouts/layout';

export interface ImportOptions {
  /** The layout the names follow; 'auto' (default) detects it from the names. */
  layout?: LayoutName | 'auto';
  /** Overrides of what the tensors imply (output stride, aux head). Shapes cannot be overridden. */
  spec?: Partial<Pick<ModelSpec, 'outputStride' | 'aux' | 'multiGrid'>>;
  preprocessing?: Preprocessing;
  classNames?: string[];
  /** Free-form provenance kept in the manifest (source file, catalogue id). */
  meta?: Record<string, unknown>;
}

export interface Imported {
  saved: SavedWeights;
  layout: LayoutName;
  /** Source keys the layout does not use (batch counters, ImageNet classifiers). */
  ignored: string[];
  /** Only part of a network (an ImageNet backbone): for fine-tuning, not for inference. */
  partial: boolean;
}

/** PyTorch conv kernels are [out, in, kh, kw]; ours [kh, kw, in, out] (depthwise: [kh, kw, channels, 1]). */
function convertConv(t: SourceTensor, depthwise: boolean): SourceTensor {
  const [o, i, kh, kw] = t.shape;
  const out = new Float32Array(t.data.length);
  for (let oc = 0; oc < o; oc++) {
    for (let ic = 0; ic < i; ic++) {
      const src = (oc * i + ic) * kh * kw;
      for (let y = 0; y < kh; y++) {
        for (let x = 0; x < kw; x++) out[((y * kw + x) * i + ic) * o + oc] = t.data[src + y * kw + x];
      }
    }
  }
  // A depthwise kernel has in = 1, so [kh, kw, 1, C] and [kh, kw, C, 1] hold the values in the same order.
  return { shape: depthwise ? [kh, kw, o, 1] : [kh, kw, i, o], data: out };
}

function toOurs(name: string, t: SourceTensor, key: string): SourceTensor {
  if (name.endsWith('.weight') && t.shape.length === 4) return convertConv(t, /\.(dw|depthwise)\.conv\.weight$/.test(name));
  if (t.shape.length !== 1) throw new Error(`"${key}" has shape [${t.shape}], which ${name} cannot take (expected a vector)`);
  return t;
}

export function importStateDict(tensors: SourceTensors, opts: ImportOptions = {}): Imported {
  const keys = [...tensors.keys()];
  const layout: Layout = !opts.layout || opts.layout === 'auto' ? detectLayout(keys) : layoutByName(opts.layout);
  const rules = layout.rules(tensors);
  const entries: WeightEntry[] = [];
  const values: Float32Array[] = [];
  const ignored: string[] = [];
  const seen = new Map<string, string>();
  let total = 0;
  for (const [key, tensor] of tensors) {
    const name = renameKey(rules, key);
    if (name === null) {
      ignored.push(key);
      continue;
    }
    if (name === undefined) {
      throw new Error(`"${key}" is not a parameter of the ${layout.name} layout (${layout.source}): is this a checkpoint of another layout?`);
    }
    const twin = seen.get(name);
    if (twin) throw new Error(`"${key}" and "${twin}" both map to ${name}: the checkpoint mixes two networks`);
    seen.set(name, key);
    const t = toOurs(name, tensor, key);
    entries.push({ name, shape: t.shape, offset: total });
    values.push(t.data);
    total += t.data.length;
  }
  // After renaming: a checkpoint of another layout is named by its first foreign key, not by a missing one.
  const spec = normalizeSpec({ ...layout.spec(tensors), ...opts.spec });
  const data = new Float32Array(total);
  values.forEach((v, i) => data.set(v, entries[i].offset));
  if (opts.classNames && opts.classNames.length !== spec.classes) {
    throw new Error(`${opts.classNames.length} class names given for a checkpoint with ${spec.classes} classes`);
  }
  const partial = layout.partial === true;
  return {
    saved: {
      manifest: {
        format: FORMAT_NAME,
        version: FORMAT_VERSION,
        spec,
        preprocessing: opts.preprocessing ?? layout.preprocessing,
        classNames: opts.classNames,
        weights: entries,
        meta: { importedFrom: layout.name, ...(partial ? { partial: 'backbone' } : {}), ...opts.meta },
      },
      data,
    },
    layout: layout.name,
    ignored,
    partial,
  };
}
