/** Tests that run tfjs on the main thread use the same backend choice as the workers. */
import { initBackend } from '../../lib/engine/backend';

let ready: Promise<string> | undefined;
export function tfReady(): Promise<string> {
  if (!ready) ready = initBackend();
  return ready;
}

/** Mocha hooks for a suite that must run on one backend: switches before, restores after. */
export function onBackend(name: string): void {
  let previous: string;
  before(async () => {
    const tf = await import('@tensorflow/tfjs');
    previous = tf.getBackend();
    await initBackend(name);
  });
  after(async () => {
    const tf = await import('@tensorflow/tfjs');
    if (previous && previous !== tf.getBackend()) await tf.setBackend(previous);
  });
}
