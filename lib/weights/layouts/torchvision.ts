/**
 * torchvision's layouts: the segmentation model deeplabv3_resnet50/101 (backbone.*, classifier.*,
 * aux_classifier.*) and the ImageNet classifiers resnet50/101 and mobilenet_v2 as backbones to
 * fine-tune from (their fully connected classifier and MobileNetV2's last 1x1 conv are not used).
 */
import { ModelSpec } from '../../models/deeplab';
import { bnRules, countBlocks, Layout, resnetFromBlocks, Rule, SourceTensors, tensorOf } from './layout';

/** ResNet stem and bottlenecks under a prefix (torchvision's names, downsample.0 conv / .1 BN). */
function resnetRules(from: string): Rule[] {
  const p = from ? `${from}\\.` : '';
  const block = `${p}layer(\\d)\\.(\\d+)`;
  return [
    [new RegExp(`^${p}conv1\\.weight$`), 'backbone.conv1.weight'],
    ...bnRules(`${p}bn1`, 'backbone.bn1'),
    [new RegExp(`^${block}\\.conv(\\d)\\.weight$`), 'backbone.layer$1.$2.conv$3.weight'],
    ...bnRules(`${block}\\.bn(\\d)`, 'backbone.layer$1.$2.bn$3'),
    [new RegExp(`^${block}\\.downsample\\.0\\.weight$`), 'backbone.layer$1.$2.downsample.conv.weight'],
    ...bnRules(`${block}\\.downsample\\.1`, 'backbone.layer$1.$2.downsample.bn'),
  ];
}

export function resnetSpec(t: SourceTensors, prefix: string, layout: string): Partial<ModelSpec> {
  const p = prefix ? `${prefix.replace(/\./g, '\\.')}\\.` : '';
  const blocks = countBlocks([...t.keys()], (l) => new RegExp(`^${p}layer${l}\\.(\\d+)\\.conv1\\.weight$`));
  const width = tensorOf(t, `${prefix ? `${prefix}.` : ''}conv1.weight`, layout).shape[0] / 64;
  return { width, ...resnetFromBlocks(blocks) };
}

const ASPP: Rule[] = [
  // convs.0: 1x1 branch; convs.1-3: dilated 3x3 branches; convs.4: image pooling (index 0 is the pool itself).
  [/^classifier\.0\.convs\.([0-3])\.0\.weight$/, 'head.aspp.b$1.conv.weight'],
  ...bnRules('classifier\\.0\\.convs\\.([0-3])\\.1', 'head.aspp.b$1.bn'),
  [/^classifier\.0\.convs\.4\.1\.weight$/, 'head.aspp.pool.conv.weight'],
  ...bnRules('classifier\\.0\\.convs\\.4\\.2', 'head.aspp.pool.bn'),
  [/^classifier\.0\.project\.0\.weight$/, 'head.aspp.project.conv.weight'],
  ...bnRules('classifier\\.0\\.project\\.1', 'head.aspp.project.bn'),
  [/^classifier\.1\.weight$/, 'head.conv.conv.weight'],
  ...bnRules('classifier\\.2', 'head.conv.bn'),
  [/^classifier\.4\.(weight|bias)$/, 'head.classifier.$1'],
  [/^aux_classifier\.0\.weight$/, 'aux.conv.conv.weight'],
  ...bnRules('aux_classifier\\.1', 'aux.conv.bn'),
  [/^aux_classifier\.4\.(weight|bias)$/, 'aux.classifier.$1'],
];

export const TORCHVISION: Layout = {
  name: 'torchvision',
  source: 'torchvision.models.segmentation.deeplabv3_resnet50 / deeplabv3_resnet101',
  preprocessing: 'imagenet',
  detect: (keys) => keys.some((k) => k.startsWith('classifier.0.convs.')) && keys.some((k) => k.startsWith('backbone.layer1.')),
  spec: (t) => ({
    variant: 'v3',
    layout: 'torchvision',
    outputStride: 8,
    classes: tensorOf(t, 'classifier.4.weight', 'torchvision').shape[0],
    aux: t.has('aux_classifier.4.weight'),
    ...resnetSpec(t, 'backbone', 'torchvision'),
  }),
  rules: () => [...resnetRules('backbone'), ...ASPP],
};

/** MobileNetV2 blocks: features.0 is the stem; block 1 has no expansion conv; features.18 (to 1280) is not used. */
const MOBILENET_V2: Rule[] = [
  [/^features\.0\.0\.weight$/, 'backbone.features.0.conv.weight'],
  ...bnRules('features\\.0\\.1', 'backbone.features.0.bn'),
  [/^features\.1\.conv\.0\.0\.weight$/, 'backbone.features.1.dw.conv.weight'],
  ...bnRules('features\\.1\\.conv\\.0\\.1', 'backbone.features.1.dw.bn'),
  [/^features\.1\.conv\.1\.weight$/, 'backbone.features.1.project.conv.weight'],
  ...bnRules('features\\.1\\.conv\\.2', 'backbone.features.1.project.bn'),
  [/^features\.18\./, null],
  [/^features\.(\d+)\.conv\.0\.0\.weight$/, 'backbone.features.$1.expand.conv.weight'],
  ...bnRules('features\\.(\\d+)\\.conv\\.0\\.1', 'backbone.features.$1.expand.bn'),
  [/^features\.(\d+)\.conv\.1\.0\.weight$/, 'backbone.features.$1.dw.conv.weight'],
  ...bnRules('features\\.(\\d+)\\.conv\\.1\\.1', 'backbone.features.$1.dw.bn'),
  [/^features\.(\d+)\.conv\.2\.weight$/, 'backbone.features.$1.project.conv.weight'],
  ...bnRules('features\\.(\\d+)\\.conv\\.3', 'backbone.features.$1.project.bn'),
  [/^classifier\./, null],
];

export const TORCHVISION_BACKBONE: Layout = {
  name: 'torchvision-backbone',
  source: 'torchvision.models resnet50 / resnet101 / mobilenet_v2 (ImageNet classifiers)',
  preprocessing: 'imagenet',
  partial: true,
  detect: (keys) => keys.includes('fc.weight') || (keys.includes('features.0.0.weight') && keys.includes('classifier.1.weight')),
  spec: (t) => {
    if (t.has('features.0.0.weight')) {
      return { variant: 'v3plus', backbone: 'mobilenetv2', outputStride: 16, width: tensorOf(t, 'features.0.0.weight', 'mobilenet_v2').shape[0] / 32 };
    }
    return { variant: 'v3', layout: 'torchvision', outputStride: 8, ...resnetSpec(t, '', 'torchvision ResNet') };
  },
  rules: () => [[/^fc\./, null], ...resnetRules(''), ...MOBILENET_V2],
};
