/** Tasks about the worker's own engine: which backend, how much memory. */
import * as tf from '@tensorflow/tfjs';
import { registerTasks } from './tasks';

export interface EngineMemory {
  backend: string;
  numTensors: number;
  numBytes: number;
  rss: number;
}

registerTasks({
  'engine.memory': () => {
    const m = tf.memory();
    const result: EngineMemory = { backend: tf.getBackend(), numTensors: m.numTensors, numBytes: m.numBytes, rss: process.memoryUsage().rss };
    return { result };
  },
  'engine.echo': (args: { data: Float32Array }) => ({ result: args, transfer: [args.data.buffer as ArrayBuffer] }),
  'engine.sleep': async (args: { ms: number }) => {
    await new Promise((r) => setTimeout(r, args.ms));
    return { result: args.ms };
  },
  'engine.fail': (args: { message: string }) => {
    throw new Error(args.message);
  },
});
