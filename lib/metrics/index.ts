/** Segmentation metrics: confusion matrix accumulation, IoU / accuracy figures, heatmap. */
export * from './confusion';
export * from './heatmap';
