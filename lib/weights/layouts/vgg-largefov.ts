/**
 * DeepLab v1 (VGG-16 LargeFOV) with torchvision VGG's feature indices: the thirteen convs at
 * features.0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28 (ReLUs and pools in between), then
 * fc6 (3x3, dilation 12), fc7 and fc8 as named convs (or the classifier.0/3/6 of a VGG-style head).
 */
import { Layout, Rule, tensorOf } from './layout';

/** torchvision's VGG-16 index of each conv, in order conv1_1 .. conv5_3. */
const CONV_INDEX = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28];
const STAGE_SIZES = [2, 2, 3, 3, 3];
const OUR_CONVS = STAGE_SIZES.flatMap((n, s) => Array.from({ length: n }, (_, j) => `conv${s + 1}_${j + 1}`));

const rules: Rule[] = [
  ...CONV_INDEX.map((idx, i): Rule => [new RegExp(`^features\\.${idx}\\.(weight|bias)$`), `backbone.${OUR_CONVS[i]}.$1`]),
  [/^(fc[678])\.(weight|bias)$/, 'head.$1.$2'],
  [/^classifier\.([036])\.(weight|bias)$/, (m) => `head.fc${6 + Number(m[1]) / 3}.${m[2]}`],
];

const classifierKey = (keys: Set<string>) => (keys.has('fc8.weight') ? 'fc8.weight' : 'classifier.6.weight');

export const VGG_LARGEFOV: Layout = {
  name: 'vgg-largefov',
  source: 'DeepLab v1 LargeFOV with torchvision VGG-16 feature indices (features.*, fc6-fc8)',
  preprocessing: 'caffe-bgr',
  detect: (keys) => keys.includes('features.28.weight') && (keys.includes('fc6.weight') || keys.includes('classifier.0.weight')),
  spec: (t) => {
    const fc6 = tensorOf(t, t.has('fc6.weight') ? 'fc6.weight' : 'classifier.0.weight', 'VGG LargeFOV');
    if (fc6.shape.length !== 4 || fc6.shape[2] !== 3) {
      throw new Error(`fc6 has shape [${fc6.shape}]: LargeFOV's fc6 is a 3x3 convolution (a VGG classifier with linear layers is not a DeepLab)`);
    }
    return {
      variant: 'v1',
      outputStride: 8,
      classes: tensorOf(t, classifierKey(new Set(t.keys())), 'VGG LargeFOV').shape[0],
      width: tensorOf(t, 'features.0.weight', 'VGG LargeFOV').shape[0] / 64,
    };
  },
  rules: () => rules,
};
