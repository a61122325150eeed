/**
 * Training data: sample sources (synthetic, folders through lib/data/dataset, in-memory) and
 * batches. A batch is a pure function of (seed, sequence number): sample k of the run is
 * position k mod n of epoch floor(k / n)'s seeded permutation, and its augmentation is drawn
 * from a stream keyed by k. Loaders can therefore prepare batches ahead of the compute, in
 * this thread or another, and a resumed run sees exactly the batches it would have seen.
 */
import { ContractError, LabelMap, RawImage } from '../contract';
import { listDataset, loadSample } from '../data/dataset';
import { decodeImage } from '../data/image';
import { AugmentOptions, augmentInto, drawAugment } from '../data/augment';
import { syntheticSample } from '../data/synthetic';
import { DataSpec } from './config';
import { mix32, Rng, STREAM } from '../runtime/random';

export interface LoadedPair {
  id: string;
  image: RawImage;
  label: LabelMap;
}

export interface SampleSource {
  readonly count: number;
  get(index: number): Promise<LoadedPair>;
}

/** Decoded samples kept in memory up to a byte budget (small data sets are decoded once). */
class DecodedCache {
  private readonly map = new Map<number, LoadedPair>();
  private bytes = 0;
  constructor(private readonly budget: number) {}

  get(i: number): LoadedPair | undefined {
    const v = this.map.get(i);
    if (v) {
      // Refresh its place in the LRU order.
      this.map.delete(i);
      this.map.set(i, v);
    }
    return v;
  }

  set(i: number, v: LoadedPair): void {
    const size = v.image.data.byteLength + v.label.data.byteLength;
    if (size > this.budget) return;
    this.map.set(i, v);
    this.bytes += size;
    for (const [k, old] of this.map) {
      if (this.bytes <= this.budget) break;
      this.map.delete(k);
      this.bytes -= old.image.data.byteLength + old.label.data.byteLength;
    }
  }
}

function checkPair(p: LoadedPair): LoadedPair {
  const { image, label } = p;
  if (image.width !== label.width || image.height !== label.height) {
    throw new ContractError(`sample ${p.id}: image is ${image.width}x${image.height} but its mask is ${label.width}x${label.height}`);
  }
  return p;
}

/** Opens a data description as a random-access source. */
export async function openSource(spec: DataSpec, cacheBytes = 256 * 1024 * 1024): Promise<SampleSource> {
  if (spec.kind === 'memory') {
    const samples = spec.samples.map((s) => checkPair(s));
    return { count: samples.length, get: async (i) => samples[i] };
  }
  if (spec.kind === 'synthetic') {
    const first = spec.first ?? 0;
    const cache = new DecodedCache(cacheBytes);
    return {
      count: spec.count,
      get: async (i) => {
        let v = cache.get(i);
        if (!v) {
          const s = syntheticSample(first + i, spec.options);
          v = { id: s.id, image: s.image, label: s.label };
          cache.set(i, v);
        }
        return v;
      },
    };
  }
  const listing = await listDataset(spec.root, spec.dir, spec.list ?? {});
  const samples = spec.limit && spec.limit > 0 ? listing.samples.slice(0, spec.limit) : listing.samples;
  if (samples.length === 0) {
    throw new ContractError(`no image/mask pairs found in "${spec.dir}" (${listing.layout} layout` +
      `${listing.missingMasks.length ? `, ${listing.missingMasks.length} image(s) without a mask` : ''})`);
  }
  const cache = new DecodedCache(cacheBytes);
  return {
    count: samples.length,
    get: async (i) => {
      const hit = cache.get(i);
      if (hit) return hit;
      const s = samples[i];
      const loaded = await loadSample(spec.root, listing, s, true);
      const image = await decodeImage(loaded.image);
      const v = checkPair({ id: s.id, image, label: loaded.groundTruth as LabelMap });
      cache.set(i, v);
      return v;
    },
  };
}

/** Which source index the run's k-th sample is (seeded permutation per epoch). */
export class SampleOrder {
  private readonly perms = new Map<number, Uint32Array>();
  constructor(readonly count: number, readonly seed: number) {}

  indexAt(k: number): number {
    const epoch = Math.floor(k / this.count);
    let p = this.perms.get(epoch);
    if (!p) {
      p = Rng.at(this.seed, STREAM.order, epoch).permutation(this.count);
      this.perms.set(epoch, p);
      // Batches straddle at most two epochs.
      for (const e of this.perms.keys()) if (e < epoch - 1) this.perms.delete(e);
    }
    return p[k % this.count];
  }
}

export interface Batch {
  /** Sequence number: iteration * iterSize + sub-batch. */
  seq: number;
  n: number;
  height: number;
  width: number;
  /** RGB 0..255, NHWC. */
  images: Float32Array;
  /** Class ids, 255 void, NHW. */
  labels: Uint8Array;
  ids: string[];
}

export interface BatchRecipe {
  batchSize: number;
  seed: number;
  augment: AugmentOptions;
  /** When set, a label >= classes (other than the ignore index) is an error naming the sample. */
  classes?: number;
}

/** Throws when a sample's mask holds a class id the network does not have. */
export function checkLabels(label: LabelMap, id: string, classes: number): void {
  const d = label.data;
  const ignore = label.ignoreIndex;
  for (let i = 0; i < d.length; i++) {
    const v = d[i];
    if (v >= classes && v !== ignore) {
      throw new ContractError(`the mask of ${id} holds class ${v} at pixel (${i % label.width}, ${Math.floor(i / label.width)}), ` +
        `but the model has ${classes} classes (ids 0..${classes - 1}, ${ignore} void): choose a model with the data set's class count`);
    }
  }
}

/** Builds batch `seq` of a run. */
export async function makeBatch(source: SampleSource, order: SampleOrder, seq: number, r: BatchRecipe): Promise<Batch> {
  const { cropHeight: H, cropWidth: W } = r.augment;
  const n = r.batchSize;
  const images = new Float32Array(n * H * W * 3);
  const labels = new Uint8Array(n * H * W);
  const ids: string[] = [];
  for (let b = 0; b < n; b++) {
    const k = seq * n + b;
    const pair = await source.get(order.indexAt(k));
    if (r.classes !== undefined) checkLabels(pair.label, pair.id, r.classes);
    const rng = new Rng(mix32(r.seed, STREAM.augment, k));
    const p = drawAugment(rng, pair.image.width, pair.image.height, r.augment);
    augmentInto(pair.image, pair.label, p, r.augment, images, b * H * W * 3, labels, b * H * W);
    ids.push(pair.id);
  }
  return { seq, n, height: H, width: W, images, labels, ids };
}

export interface BatchLoader {
  next(): Promise<Batch>;
  close(): Promise<void>;
}

/** Prepares up to `prefetch` batches ahead in this thread (decoding overlaps; augmenting does not). */
export class InlineLoader implements BatchLoader {
  private readonly queue: Promise<Batch>[] = [];
  private nextSeq: number;
  private readonly order: SampleOrder;

  constructor(private readonly source: SampleSource, private readonly recipe: BatchRecipe, startSeq: number, private readonly prefetch = 2) {
    this.order = new SampleOrder(source.count, recipe.seed);
    this.nextSeq = startSeq;
    this.fill();
  }

  private fill(): void {
    while (this.queue.length < this.prefetch) {
      const p = makeBatch(this.source, this.order, this.nextSeq++, this.recipe);
      p.catch(() => undefined);
      this.queue.push(p);
    }
  }

  next(): Promise<Batch> {
    const p = this.queue.shift()!;
    this.fill();
    return p;
  }

  async close(): Promise<void> {
    this.queue.length = 0;
  }
}
