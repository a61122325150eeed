/** Every layout the importers know, in the order auto-detection tries them. */
import { DEEPLAB_RESNET, KAZUTO } from './caffe-v2';
import { JFZHANG95 } from './jfzhang95';
import { Layout, LayoutName } from './layout';
import { TORCHVISION, TORCHVISION_BACKBONE } from './torchvision';
import { VGG_LARGEFOV } from './vgg-largefov';

export const LAYOUTS: Layout[] = [TORCHVISION, JFZHANG95, KAZUTO, DEEPLAB_RESNET, VGG_LARGEFOV, TORCHVISION_BACKBONE];
export const LAYOUT_NAMES = LAYOUTS.map((l) => l.name);

export function layoutByName(name: string): Layout {
  const l = LAYOUTS.find((x) => x.name === name);
  if (!l) throw new Error(`unknown weights layout "${name}": expected one of ${LAYOUT_NAMES.join(', ')}`);
  return l;
}

/** The layout whose names these keys follow; a clear error listing the known ones when none fits. */
export function detectLayout(keys: string[]): Layout {
  const l = LAYOUTS.find((x) => x.detect(keys));
  if (l) return l;
  const sample = keys.slice(0, 3).map((k) => `"${k}"`).join(', ');
  throw new Error(`the checkpoint's parameter names (${sample}, ...) follow none of the known layouts (${LAYOUT_NAMES.join(', ')}); name the layout if you know it`);
}

export type { Layout, LayoutName };
