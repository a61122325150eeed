/**
 * `npx node-red-deeplab <command>`: the catalogue of published weights from a shell, a one-off
 * conversion of a checkpoint into our saved format, so a flow's model config can point at a folder
 * and never parse the checkpoint again, and the export of a saved model or checkpoint to ONNX.
 */
import { parseArgs } from 'util';
import { initBackend } from './engine/backend';
import { listPublished, searchPublished, PublishedEntry } from './weights/catalogue';
import { defaultCacheDir, describeProgress } from './weights/download';
import { writeSaved } from './weights/format';
import { importCheckpoint } from './weights/import-file';
import { LAYOUT_NAMES, LayoutName } from './weights/layouts';
import { exportOnnxFile, sourceForPath } from './weights/export-onnx';
import { PrepareProgress, preparePublished } from './weights/published';

const USAGE = `usage: node-red-deeplab <command>

  list [words]                      the catalogue of published weights (filtered by words)
  fetch <id> [--cache DIR]          download a published checkpoint and convert it; prints the folder
                                    (a TF.js graph model: its model.json, run as it is)
  import <file> --out DIR           convert a PyTorch checkpoint (.pth, .pth.tar, .pt) into our format
         [--layout NAME] [--output-stride 8|16] [--classes a,b,c]
  export --onnx FILE <source>       write a saved model folder, or a checkpoint as import takes it,
         [--layout NAME] [--output-stride 8|16]
                                    as an ONNX model (opset 17): input "input" [N, H, W, 3] normalised,
                                    output "logits" [N, h, w, classes] at the logit stride

layouts: ${LAYOUT_NAMES.join(', ')} (default: detected from the parameter names)
cache:   --cache, else $DEEPLAB_WEIGHTS_CACHE, else ~/.node-red/deeplab-weights`;

function row(e: PublishedEntry): string {
  const how = e.manual ? 'manual' : 'download';
  const score = `${e.score.value} ${e.score.metric}`;
  return `${e.id.padEnd(48)} ${`${e.spec.variant} ${e.spec.backbone}`.padEnd(22)} ${String(e.spec.classes).padStart(4)} cls  ${score.padEnd(14)} ${how}`;
}

function progressPrinter(out: NodeJS.WritableStream): (p: PrepareProgress) => void {
  let last = 0;
  return (p) => {
    if (p.phase === 'convert') {
      out.write('\nconverting to the saved format...\n');
      return;
    }
    const d = p.download!;
    const now = Date.now();
    if (now - last < 500 && d.percent !== 100) return;
    last = now;
    out.write(`\rdownloading ${describeProgress(d)}   `);
  };
}

export async function main(argv: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      cache: { type: 'string' },
      out: { type: 'string' },
      layout: { type: 'string' },
      'output-stride': { type: 'string' },
      classes: { type: 'string' },
      onnx: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, ...rest] = positionals;
  if (values.help || !command || command === 'help') {
    out.write(`${USAGE}\n`);
    return command || values.help ? 0 : 2;
  }
  if (command === 'list') {
    const entries = rest.length ? searchPublished(rest.join(' ')) : listPublished();
    for (const e of entries) out.write(`${row(e)}\n`);
    return 0;
  }
  if (command === 'fetch') {
    if (rest.length !== 1) throw new Error('fetch takes one catalogue id (see `node-red-deeplab list`)');
    const dir = await preparePublished(rest[0], { cacheDir: values.cache || defaultCacheDir(), onProgress: progressPrinter(err) });
    out.write(`${dir}\n`);
    return 0;
  }
  if (command === 'import') {
    if (rest.length !== 1 || !values.out) throw new Error('import takes one checkpoint file and --out DIR');
    const os = outputStride(values['output-stride']);
    const imported = await importCheckpoint(rest[0], {
      layout: (values.layout || 'auto') as LayoutName | 'auto',
      spec: os ? { outputStride: os } : undefined,
      classNames: values.classes ? values.classes.split(',').map((s) => s.trim()) : undefined,
    });
    writeSaved(values.out, imported.saved);
    const s = imported.saved.manifest.spec;
    out.write(`${values.out}: ${imported.layout} layout, DeepLab ${s.variant} ${s.backbone} (${s.classes} classes, output stride ${s.outputStride})` +
      `${imported.partial ? ', backbone only (for fine-tuning)' : ''}; ${imported.ignored.length} tensors not used\n`);
    return 0;
  }
  if (command === 'export') {
    if (rest.length !== 1 || !values.onnx) throw new Error('export takes one source (a saved model folder or a checkpoint file) and --onnx FILE');
    const source = sourceForPath(rest[0], { layout: values.layout, outputStride: outputStride(values['output-stride']) });
    // The network is built on tfjs before its weights are written out (no forward pass runs).
    await initBackend();
    const r = await exportOnnxFile(source, values.onnx);
    const s = r.spec;
    out.write(`${values.onnx}: DeepLab ${s.variant} ${s.backbone} (${s.classes} classes, logits at stride ${r.logitStride}), ${(r.bytes / 1e6).toFixed(1)} MB\n`);
    return 0;
  }
  throw new Error(`unknown command "${command}"\n${USAGE}`);
}

function outputStride(v: string | undefined): 8 | 16 | undefined {
  if (v !== undefined && v !== '8' && v !== '16') throw new Error(`--output-stride must be 8 or 16, got ${v}`);
  return v ? (Number(v) as 8 | 16) : undefined;
}

