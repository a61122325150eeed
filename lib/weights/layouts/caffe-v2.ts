/**
 * DeepLab v2 (ResNet-101 + ASPP-L) as converted from the original Caffe models by two PyTorch
 * ports: kazuto1011/deeplab-pytorch (layer1 = stem, layer2-5 = residual layers of `blockN` units
 * with reduce / conv3x3 / increase / shortcut, aspp.cN; `base.` under its multi-scale wrapper) and
 * DeepLab-ResNet-Pytorch (torchvision-like names under `Scale.`, the ASPP in layer5.conv2d_list).
 * Both put the stride on the 1x1 reduce conv, as our 'caffe' ResNet does.
 */
import { bnRules, countBlocks, Layout, resnetFromBlocks, Rule, tensorOf } from './layout';
import { resnetSpec } from './torchvision';

const KAZUTO_UNITS: [string, string][] = [['reduce', '1'], ['conv3x3', '2'], ['increase', '3']];
const shift = (layer: string) => String(Number(layer) - 1);

/** kazuto1011's v3/v3+ keep the Caffe bottleneck (stride on the 1x1 conv), which our v3/v3+ ResNets do not have. */
function refuseKazutoV3(keys: string[]): void {
  if (keys.some((k) => /^(base\.)?aspp\.(c0\.conv|imagepool)/.test(k) || /^(base\.)?(fc1|reduce|decoder)\./.test(k))) {
    throw new Error('this kazuto1011 checkpoint is a DeepLab v3/v3+: its ResNet strides on the 1x1 conv (Caffe style), which our v3/v3+ ResNets do not; only its v2 checkpoints can be imported');
  }
}

export const KAZUTO: Layout = {
  name: 'kazuto1011',
  source: 'kazuto1011/deeplab-pytorch (DeepLabV2, optionally under MSC)',
  preprocessing: 'caffe-bgr',
  detect: (keys) => keys.some((k) => /^(base\.)?layer1\.conv1\.conv\.weight$/.test(k)),
  spec: (t) => {
    const keys = [...t.keys()];
    refuseKazutoV3(keys);
    const p = t.has('base.layer1.conv1.conv.weight') ? 'base.' : '';
    // Residual layers are layer2..layer5 with 1-based blockN names.
    const blocks = countBlocks(keys, (l) => new RegExp(`^${p.replace('.', '\\.')}layer${l + 1}\\.block(\\d+)\\.reduce\\.conv\\.weight$`), 1);
    return {
      variant: 'v2',
      outputStride: 8,
      classes: tensorOf(t, `${p}aspp.c0.weight`, 'kazuto1011 DeepLabV2').shape[0],
      width: tensorOf(t, `${p}layer1.conv1.conv.weight`, 'kazuto1011 DeepLabV2').shape[0] / 64,
      ...resnetFromBlocks(blocks),
    };
  },
  rules: () => [
    [/^(?:base\.)?layer1\.conv1\.conv\.weight$/, 'backbone.conv1.weight'],
    ...bnRules('(?:base\\.)?layer1\\.conv1\\.bn', 'backbone.bn1'),
    ...KAZUTO_UNITS.flatMap(([unit, n]): Rule[] => [
      [new RegExp(`^(?:base\\.)?layer([2-5])\\.block(\\d+)\\.${unit}\\.conv\\.weight$`), (m) => `backbone.layer${shift(m[1])}.${shift(m[2])}.conv${n}.weight`],
      ...bnRules(`(?:base\\.)?layer([2-5])\\.block(\\d+)\\.${unit}\\.bn`, (m) => `backbone.layer${shift(m[1])}.${shift(m[2])}.bn${n}`),
    ]),
    [/^(?:base\.)?layer([2-5])\.block(\d+)\.shortcut\.conv\.weight$/, (m) => `backbone.layer${shift(m[1])}.${shift(m[2])}.downsample.conv.weight`],
    ...bnRules('(?:base\\.)?layer([2-5])\\.block(\\d+)\\.shortcut\\.bn', (m) => `backbone.layer${shift(m[1])}.${shift(m[2])}.downsample.bn`),
    [/^(?:base\.)?aspp\.c(\d)\.(weight|bias)$/, 'head.aspp.$1.$2'],
  ],
};

export const DEEPLAB_RESNET: Layout = {
  name: 'deeplab-resnet',
  source: 'DeepLab-ResNet-Pytorch (MS_Deeplab, Scale.*)',
  preprocessing: 'caffe-bgr',
  detect: (keys) => keys.some((k) => k.startsWith('Scale.layer5.conv2d_list.')),
  spec: (t) => ({
    variant: 'v2',
    outputStride: 8,
    classes: tensorOf(t, 'Scale.layer5.conv2d_list.0.weight', 'DeepLab-ResNet').shape[0],
    ...resnetSpec(t, 'Scale', 'DeepLab-ResNet'),
  }),
  rules: () => [
    [/^Scale\.conv1\.weight$/, 'backbone.conv1.weight'],
    ...bnRules('Scale\\.bn1', 'backbone.bn1'),
    [/^Scale\.layer([1-4])\.(\d+)\.conv(\d)\.weight$/, 'backbone.layer$1.$2.conv$3.weight'],
    ...bnRules('Scale\\.layer([1-4])\\.(\\d+)\\.bn(\\d)', 'backbone.layer$1.$2.bn$3'),
    [/^Scale\.layer([1-4])\.(\d+)\.downsample\.0\.weight$/, 'backbone.layer$1.$2.downsample.conv.weight'],
    ...bnRules('Scale\\.layer([1-4])\\.(\\d+)\\.downsample\\.1', 'backbone.layer$1.$2.downsample.bn'),
    [/^Scale\.layer5\.conv2d_list\.(\d)\.(weight|bias)$/, 'head.aspp.$1.$2'],
  ],
};
