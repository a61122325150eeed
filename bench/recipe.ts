/**
 * Learning curves on the "hard-shapes" synthetic set (3 shape classes + background at 161 px,
 * random object colours on coloured textures: lib/data/synthetic), the set the small-data CPU
 * recipe is tuned on. Trains from scratch and prints, every RECIPE_EVAL iterations, the held-out
 * mIoU against iterations and minutes, then the minutes (and iterations) to mIoU 0.6.
 *
 * The default run is the train node's "small data (CPU)" preset on 40 training and 20 held-out
 * images (no recipe found yet reaches 0.6 on this set: README; bench/torch_recipe.py searches faster).
 * RECIPE_CONFIG (JSON) overrides any training option (e.g. '{"optimizer":"sgd","lr":0.02}'),
 * RECIPE_MODEL (JSON) the model spec (e.g. '{"width":0.25}') and RECIPE_SET (JSON) the set's options
 * (e.g. '{"texture":0}'; lib/data/synthetic); RECIPE_ITER (default: the preset's 240),
 * RECIPE_EVAL (40), RECIPE_TRAIN (40), RECIPE_VAL (20), RECIPE_LABEL (a name for the curve),
 * RECIPE_STOP_AT (stop once this mIoU is reached; default: run all iterations).
 *   node dist/bench/recipe.js
 */
import { performance } from 'perf_hooks';
import { initBackend } from '../lib/engine/backend';
import { syntheticClassNames, syntheticSet } from '../lib/data/synthetic';
import { normalizeTrainConfig, TrainConfigInput } from '../lib/training/config';
import { SMALL_DATA } from '../lib/training/presets';
import { Trainer } from '../lib/training/trainer';

const env = (k: string, d: number) => (process.env[k] ? Number(process.env[k]) : d);
const json = (k: string): Record<string, unknown> => (process.env[k] ? JSON.parse(process.env[k]!) : {});

async function main(): Promise<void> {
  const backend = await initBackend(process.env.DEEPLAB_BACKEND);
  const maxIter = env('RECIPE_ITER', SMALL_DATA.maxIter);
  const evalEvery = env('RECIPE_EVAL', 40);
  const stopAt = env('RECIPE_STOP_AT', 2);
  const options = { ...syntheticSet('hard-shapes'), seed: 7, ...json('RECIPE_SET') };
  const overrides = json('RECIPE_CONFIG') as Partial<TrainConfigInput>;
  const input: TrainConfigInput = {
    ...SMALL_DATA,
    model: { spec: { variant: 'v3plus', backbone: 'mobilenetv2', classes: 4, width: SMALL_DATA.width, seed: 3, ...json('RECIPE_MODEL') }, classNames: syntheticClassNames(4) },
    train: { kind: 'synthetic', count: env('RECIPE_TRAIN', 40), options },
    val: { kind: 'synthetic', count: env('RECIPE_VAL', 20), first: 1_000_000, options },
    cropSize: SMALL_DATA.cropSize,
    maxIter, evalEvery, checkpointEvery: 0, progressEvery: 1, seed: 5,
    ...overrides,
  };
  const cfg = normalizeTrainConfig(input);
  const t = await Trainer.create(cfg);
  const label = process.env.RECIPE_LABEL ?? 'preset';
  const curve: [number, number, number][] = [];
  let reached: [number, number] | undefined;
  let trainMs = 0;
  try {
    const { model: _m, train: _t, val: _v, ...shown } = cfg;
    console.log(`[${label}] backend ${backend}, ${t.parameterCount.toLocaleString()} parameters, v3+ MobileNetV2 width ${cfg.model.spec.width}`);
    console.log(`[${label}] ${JSON.stringify(shown)}`);
    for (const n of t.notes) console.log(`[${label}] ${n}`);
    const control = { stopRequested: false };
    const t0 = performance.now();
    // CPU time hardly depends on the load of a shared machine: the nearest figure to a quiet run's time.
    const cpu0 = process.cpuUsage();
    await t.run(control, {
      // Training time only (the trainer's sum of step times): evaluations are not counted.
      onProgress: (p) => {
        trainMs = p.elapsedMs;
        if (p.iteration % 10 === 0) {
          const cpu = process.cpuUsage(cpu0);
          console.log(`[${label}]   iteration ${p.iteration} loss ${p.loss.toFixed(3)} lr ${p.lr.toExponential(2)} step ${p.stepMs.toFixed(0)} ms, ` +
            `process CPU ${((cpu.user + cpu.system) / 1e6 / p.iteration).toFixed(2)} s per iteration (with evaluations)`);
        }
      },
      onEval: (e) => {
        const trainMin = trainMs / 60000;
        const m = e.report.meanIoU ?? 0;
        curve.push([e.iteration, trainMin, m]);
        console.log(`[${label}] iteration ${String(e.iteration).padStart(4)}  ${trainMin.toFixed(2)} min  mIoU ${m.toFixed(3)}  ` +
          `(per class ${e.report.perClass.map((c) => (c.iou ?? 0).toFixed(2)).join(' ')})`);
        if (!reached && m >= 0.6) reached = [e.iteration, trainMin];
        if (m >= stopAt) control.stopRequested = true;
      },
    });
    console.log(`[${label}] wall time ${((performance.now() - t0) / 60000).toFixed(2)} min with evaluations, ${(trainMs / 60000).toFixed(2)} min training`);
    console.log(`[${label}] curve ${JSON.stringify(curve.map(([i, , m]) => [i, Number(m.toFixed(3))]))}`);
    console.log(reached
      ? `[${label}] minutes to mIoU 0.6: ${reached[1].toFixed(2)} (iteration ${reached[0]}; training steps only)`
      : `[${label}] mIoU 0.6 not reached in ${t.iteration} iterations (best ${Math.max(...curve.map((c) => c[2])).toFixed(3)})`);
  } finally {
    await t.close();
    t.dispose();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
