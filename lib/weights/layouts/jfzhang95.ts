/**
 * jfzhang95/pytorch-deeplab-xception: DeepLab v3+ with backbone.* (torchvision-named ResNet-101 or
 * its own MobileNetV2 of nn.Sequential convs), aspp.aspp1-4 / global_avg_pool / conv1 / bn1 and
 * decoder.conv1 / bn1 / last_conv. Its trainer saves {'state_dict': ..., 'best_pred': ...} with
 * DataParallel's `module.` prefix (the checkpoint reader strips that).
 */
import { bnRules, Layout, Rule, SourceTensors, tensorOf } from './layout';
import { resnetSpec } from './torchvision';

const HEAD: Rule[] = [
  [/^aspp\.aspp([1-4])\.atrous_conv\.weight$/, (m) => `head.aspp.b${Number(m[1]) - 1}.conv.weight`],
  ...bnRules('aspp\\.aspp([1-4])\\.bn', (m) => `head.aspp.b${Number(m[1]) - 1}.bn`),
  [/^aspp\.global_avg_pool\.1\.weight$/, 'head.aspp.pool.conv.weight'],
  ...bnRules('aspp\\.global_avg_pool\\.2', 'head.aspp.pool.bn'),
  [/^aspp\.conv1\.weight$/, 'head.aspp.project.conv.weight'],
  ...bnRules('aspp\\.bn1', 'head.aspp.project.bn'),
  [/^decoder\.conv1\.weight$/, 'head.decoder.reduce.conv.weight'],
  ...bnRules('decoder\\.bn1', 'head.decoder.reduce.bn'),
  [/^decoder\.last_conv\.0\.weight$/, 'head.decoder.fuse1.conv.weight'],
  ...bnRules('decoder\\.last_conv\\.1', 'head.decoder.fuse1.bn'),
  [/^decoder\.last_conv\.4\.weight$/, 'head.decoder.fuse2.conv.weight'],
  ...bnRules('decoder\\.last_conv\\.5', 'head.decoder.fuse2.bn'),
  [/^decoder\.last_conv\.8\.(weight|bias)$/, 'head.classifier.$1'],
];

const RESNET: Rule[] = [
  [/^backbone\.conv1\.weight$/, 'backbone.conv1.weight'],
  ...bnRules('backbone\\.bn1', 'backbone.bn1'),
  [/^backbone\.layer(\d)\.(\d+)\.conv(\d)\.weight$/, 'backbone.layer$1.$2.conv$3.weight'],
  ...bnRules('backbone\\.layer(\\d)\\.(\\d+)\\.bn(\\d)', 'backbone.layer$1.$2.bn$3'),
  [/^backbone\.layer(\d)\.(\d+)\.downsample\.0\.weight$/, 'backbone.layer$1.$2.downsample.conv.weight'],
  ...bnRules('backbone\\.layer(\\d)\\.(\\d+)\\.downsample\\.1', 'backbone.layer$1.$2.downsample.bn'),
];

/** Its MobileNetV2 blocks are flat nn.Sequentials; where each conv and BN sits depends on whether the block expands. */
const EXPANDED: Record<number, [string, 'conv' | 'bn']> = { 0: ['expand', 'conv'], 1: ['expand', 'bn'], 3: ['dw', 'conv'], 4: ['dw', 'bn'], 6: ['project', 'conv'], 7: ['project', 'bn'] };
const PLAIN: Record<number, [string, 'conv' | 'bn']> = { 0: ['dw', 'conv'], 1: ['dw', 'bn'], 3: ['project', 'conv'], 4: ['project', 'bn'] };
const BN_PARAM: Record<string, string | null> = { weight: 'gamma', bias: 'beta', running_mean: 'running_mean', running_var: 'running_var', num_batches_tracked: null };

function mobilenetRules(t: SourceTensors): Rule[] {
  // A block expands when its Sequential has a 7th module (the projection after expand and depthwise).
  const expands = (block: string) => t.has(`backbone.features.${block}.conv.6.weight`);
  return [
    [/^backbone\.features\.0\.0\.weight$/, 'backbone.features.0.conv.weight'],
    ...bnRules('backbone\\.features\\.0\\.1', 'backbone.features.0.bn'),
    [/^backbone\.features\.(\d+)\.conv\.(\d)\.(\w+)$/, (m) => {
      const at = (expands(m[1]) ? EXPANDED : PLAIN)[Number(m[2])];
      if (!at) return undefined;
      const [unit, kind] = at;
      if (kind === 'conv') return m[3] === 'weight' ? `backbone.features.${m[1]}.${unit}.conv.weight` : undefined;
      const param = BN_PARAM[m[3]];
      return param === undefined ? undefined : param && `backbone.features.${m[1]}.${unit}.bn.${param}`;
    }],
  ];
}

export const JFZHANG95: Layout = {
  name: 'jfzhang95',
  source: 'jfzhang95/pytorch-deeplab-xception (DeepLab v3+, ResNet-101 or MobileNetV2 backbone)',
  preprocessing: 'imagenet',
  detect: (keys) => keys.some((k) => k.startsWith('aspp.aspp1.')) && keys.some((k) => k.startsWith('decoder.last_conv.')),
  spec: (t: SourceTensors) => {
    const keys = [...t.keys()];
    const classes = tensorOf(t, 'decoder.last_conv.8.weight', 'jfzhang95').shape[0];
    if (t.has('backbone.layer1.0.conv1.weight')) return { variant: 'v3plus', outputStride: 16, classes, ...resnetSpec(t, 'backbone', 'jfzhang95 ResNet') };
    if (t.has('backbone.features.0.0.weight')) {
      return { variant: 'v3plus', backbone: 'mobilenetv2', layout: 'jfzhang95', outputStride: 16, classes, width: t.get('backbone.features.0.0.weight')!.shape[0] / 32 };
    }
    const what = keys.some((k) => k.startsWith('backbone.block')) ? 'an aligned Xception' : keys.some((k) => k.startsWith('backbone.layer0')) ? 'a DRN' : 'an unknown';
    throw new Error(`this jfzhang95 checkpoint has ${what} backbone: only its ResNet-101 and MobileNetV2 models can be imported (their Xception and DRN differ from ours)`);
  },
  rules: (t) => [...RESNET, ...mobilenetRules(t), ...HEAD],
};

