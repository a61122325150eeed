/**
 * The DeepLab family from one config: backbone + head, built on a ParamStore.
 * `forward` maps a preprocessed NHWC batch to logits at the output stride (stride 4 for v3+).
 */
import * as tf from '@tensorflow/tfjs';
import { Backbone } from './backbones/types';
import { MobileNetV2 } from './backbones/mobilenetv2';
import { ResNet, ResNetLayout } from './backbones/resnet';
import { Vgg16Dilated } from './backbones/vgg16';
import { Xception65 } from './backbones/xception';
import { AsppV2Head, AsppV3Head, AuxHead, DecoderHead, Head, LargeFovHead, TorchvisionHead } from './heads';
import { Ctx, INFERENCE } from './layers';
import { OnnxGraph } from './onnx/graph';
import { ParamStore } from './params';

export type Variant = 'v1' | 'v2' | 'v3' | 'v3plus';
export type BackboneName = 'vgg16' | 'resnet50' | 'resnet101' | 'mobilenetv2' | 'xception65';
export type HeadLayout = 'paper' | 'torchvision' | 'jfzhang95';

export interface ModelSpec {
  variant: Variant;
  backbone: BackboneName;
  classes: number;
  outputStride: 8 | 16;
  /**
   * Whose arithmetic where implementations differ: v3's paper head or torchvision's (rates 12/24/36,
   * extra 3x3 conv, dropout); for v3+ MobileNetV2, jfzhang95's (each block zero-pads its input before
   * the expansion conv, so the depthwise conv sees the expansion of zeros at the border).
   */
  layout: HeadLayout;
  /** torchvision layout: the auxiliary FCN head on layer3 (used by training). */
  aux: boolean;
  /** Channel multiplier: 1 is the published network; smaller gives fast test/demo variants. */
  width: number;
  /** ResNet blocks per layer (default from the depth); for Xception-65 the third entry is the number of middle-flow units (16). */
  blocks?: [number, number, number, number];
  multiGrid: number[];
  seed: number;
}

export const VARIANT_BACKBONES: Record<Variant, BackboneName[]> = {
  v1: ['vgg16'],
  v2: ['resnet101', 'resnet50'],
  v3: ['resnet101', 'resnet50', 'mobilenetv2'],
  v3plus: ['resnet101', 'resnet50', 'mobilenetv2', 'xception65'],
};

/** Fills in the defaults of each variant and checks the combination. */
export function normalizeSpec(partial: Partial<ModelSpec> & { variant?: Variant }): ModelSpec {
  const variant = partial.variant ?? 'v3plus';
  if (!(variant in VARIANT_BACKBONES)) throw new Error(`unknown DeepLab variant "${variant}": expected v1, v2, v3 or v3plus`);
  const backbone = partial.backbone ?? (variant === 'v1' ? 'vgg16' : variant === 'v3plus' ? 'mobilenetv2' : 'resnet101');
  if (!VARIANT_BACKBONES[variant].includes(backbone)) {
    throw new Error(`DeepLab ${variant} supports the backbones ${VARIANT_BACKBONES[variant].join(', ')}, not "${backbone}"`);
  }
  const classes = partial.classes ?? 21;
  if (!Number.isInteger(classes) || classes < 1 || classes > 255) throw new Error(`classes must be an integer in 1..255, got ${classes}`);
  const outputStride = partial.outputStride ?? (variant === 'v1' || variant === 'v2' ? 8 : 16);
  if (outputStride !== 8 && outputStride !== 16) throw new Error(`output stride must be 8 or 16, got ${outputStride}`);
  if ((variant === 'v1' || variant === 'v2') && outputStride !== 8) throw new Error(`DeepLab ${variant} has output stride 8`);
  const layout = partial.layout ?? 'paper';
  if (layout === 'torchvision' && variant !== 'v3') throw new Error('the torchvision layout exists for v3 only');
  if (layout === 'jfzhang95' && !(variant === 'v3plus' && backbone === 'mobilenetv2')) throw new Error('the jfzhang95 layout exists for v3+ MobileNetV2 only');
  const width = partial.width ?? 1;
  if (!(width > 0 && width <= 4)) throw new Error(`width multiplier must be in (0, 4], got ${width}`);
  return {
    variant,
    backbone,
    classes,
    outputStride,
    layout,
    aux: layout === 'torchvision' ? partial.aux ?? false : false,
    width,
    blocks: partial.blocks,
    multiGrid: partial.multiGrid ?? [1, 2, 4],
    seed: partial.seed ?? 1,
  };
}

/**
 * THE align-corners rule: whether a network's resizes (input, logits, labels, the v3+ decoder's
 * upsampling) align corners (DeepLab's own code, TF 1) or use half-pixel centres (torchvision's
 * models, PyTorch's align_corners=False). Every resize of an input or of logits follows it.
 */
export function alignsCorners(spec: Pick<ModelSpec, 'layout'>): boolean {
  return spec.layout !== 'torchvision';
}

/** Two specs build the same network (same parameters and arithmetic); the initialisation seed does not count. */
export function sameNetwork(a: ModelSpec, b: ModelSpec): boolean {
  return JSON.stringify({ ...a, seed: 0 }) === JSON.stringify({ ...b, seed: 0 });
}

/** ASPP rates: 6/12/18 at OS16, doubled at OS8; torchvision uses 12/24/36. */
function asppRates(spec: ModelSpec): number[] {
  if (spec.layout === 'torchvision') return [12, 24, 36];
  return spec.outputStride === 8 ? [12, 24, 36] : [6, 12, 18];
}

function buildBackbone(store: ParamStore, spec: ModelSpec): Backbone {
  if (spec.backbone === 'vgg16') return new Vgg16Dilated(store, spec.width);
  if (spec.backbone === 'mobilenetv2') return new MobileNetV2(store, spec.outputStride, spec.width, spec.layout === 'jfzhang95');
  if (spec.backbone === 'xception65') return new Xception65(store, spec.outputStride, spec.width, spec.blocks ? spec.blocks[2] : 16);
  const layout: ResNetLayout = spec.variant === 'v2' ? 'caffe' : spec.layout === 'torchvision' ? 'torchvision' : 'paper';
  return new ResNet(store, {
    depth: spec.backbone === 'resnet50' ? 50 : 101,
    layout,
    outputStride: spec.outputStride,
    multiGrid: layout === 'paper' ? spec.multiGrid : undefined,
    width: spec.width,
    blocks: spec.blocks,
  });
}

export interface ForwardOutput {
  logits: tf.Tensor4D;
  aux?: tf.Tensor4D;
}

export class DeepLab {
  readonly spec: ModelSpec;
  readonly store: ParamStore;
  private readonly backbone: Backbone;
  private readonly head?: Head;
  private readonly decoder?: DecoderHead;
  private readonly auxHead?: AuxHead;

  constructor(partial: Partial<ModelSpec>) {
    this.spec = normalizeSpec(partial);
    const s = this.spec;
    this.store = new ParamStore(s.seed);
    const store = this.store;
    this.backbone = buildBackbone(store, s);
    const cin = this.backbone.outChannels;
    if (s.variant === 'v1') this.head = new LargeFovHead(store, cin, s.classes, s.width);
    else if (s.variant === 'v2') this.head = new AsppV2Head(store, cin, s.classes);
    else if (s.variant === 'v3') {
      this.head = s.layout === 'torchvision'
        ? new TorchvisionHead(store, cin, s.classes, asppRates(s), s.width)
        : new AsppV3Head(store, cin, s.classes, asppRates(s), s.width);
      if (s.aux) this.auxHead = new AuxHead(store, this.backbone.midChannels, s.classes, s.width);
    } else {
      this.decoder = new DecoderHead(store, cin, this.backbone.lowChannels, s.classes, asppRates(s), s.width);
    }
  }

  /** Nominal output stride of the logits (v3+ predicts at stride 4). */
  get logitStride(): number {
    return this.spec.variant === 'v3plus' ? 4 : this.spec.outputStride;
  }

  /** Preprocessed NHWC float input -> logits (and the aux logits while training). */
  forward(x: tf.Tensor4D, ctx: Ctx = INFERENCE): ForwardOutput {
    const f = this.backbone.apply(x, ctx);
    const logits = this.decoder ? this.decoder.apply(f.out, f.low, ctx) : this.head!.apply(f.out, ctx);
    const aux = this.auxHead && ctx.training && f.mid ? this.auxHead.apply(f.mid, ctx) : undefined;
    return { logits, aux };
  }

  /**
   * `forward`'s inference arithmetic as ONNX nodes: NCHW input tensor name in, logits' name out.
   * The auxiliary head is left out: it exists for training's loss only.
   */
  export(g: OnnxGraph, x: string): string {
    const f = this.backbone.export(g, x);
    return this.decoder ? this.decoder.export(g, f.out, f.low) : this.head!.export(g, f.out);
  }

  /** Whether the resizes around this network align corners (see alignsCorners). */
  get alignCorners(): boolean {
    return alignsCorners(this.spec);
  }

  /** Trainable parameter count (BN scale and shift included, running statistics not). */
  paramCount(): number {
    return this.store.countTrainable();
  }

  dispose(): void {
    this.store.dispose();
  }
}
