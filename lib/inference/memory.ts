/**
 * What one image costs deeplab-infer in memory, for its budget check before decoding: the decoded
 * pixels, the copy sent to the worker and its int32 tensor, each run's resized and normalised
 * input, and the logits that come back. The network's activations count only with the resize
 * policy 'none', where the image's own size decides the forward pass; with 'valid' and 'pad' the
 * node's Size bounds them whatever the image (the model's fixed cost, not the image's).
 */
import type { ModelSpec } from '../models/deeplab';
import { InferOptions, planInference } from './plan';

/**
 * Peak activation bytes per network-input pixel of a forward pass at width 1, measured with
 * tf.profile on the wasm backend (peak bytes at two input sizes, the difference per pixel, so the
 * weights drop out): MobileNetV2 v3+ 745, VGG-16 v1 2366, ResNet-101 v2 (output stride 8) 3155.
 * ResNet-50 and Xception-65 take ResNet-101's figure (not measured, same stride-8 widths).
 */
const ACTIVATION_BYTES_PER_PIXEL: Record<string, number> = { mobilenetv2: 750, vgg16: 2400, resnet50: 3200, resnet101: 3200, xception65: 3200 };
const UNKNOWN_NETWORK_BYTES_PER_PIXEL = 3200;

/** Bytes deeplab-infer needs for a width x height image (see the module comment). */
export function inferMemory(width: number, height: number, opts: InferOptions, net: { stride: number; classes: number; spec?: Partial<ModelSpec> }): number {
  const plan = planInference(width, height, net.stride, opts);
  const passes = opts.flip ? 2 : 1;
  // Decoded RGB, the copy sent to the worker, and its int32 tensor.
  let need = width * height * (3 + 3 + 12);
  let largestRun = 0;
  for (const r of plan.runs) {
    const w = r.width + r.padRight;
    const h = r.height + r.padBottom;
    const cells = (Math.floor((w - 1) / net.stride) + 1) * (Math.floor((h - 1) / net.stride) + 1);
    need += cells * net.classes * 4 * passes;
    // Resized float input and its normalised copy (x2 with the mirrored one), then the activations.
    let run = w * h * 3 * 4 * 2 * passes;
    if (opts.resize === 'none') {
      const perPixel = ACTIVATION_BYTES_PER_PIXEL[net.spec?.backbone ?? ''] ?? UNKNOWN_NETWORK_BYTES_PER_PIXEL;
      run += w * h * passes * perPixel * Math.min(1, net.spec?.width ?? 1);
    }
    largestRun = Math.max(largestRun, run);
  }
  return need + largestRun;
}
