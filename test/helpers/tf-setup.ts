/** Tests that run tfjs on the main thread use the same backend choice as the workers. */
import { initBackend } from '../../lib/engine/backend';

let ready: Promise<string> | undefined;
export function tfReady(): Promise<string> {
  if (!ready) ready = initBackend();
  return ready;
}
