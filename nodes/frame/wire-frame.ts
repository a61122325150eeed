import * as os from 'os';
import type { FrameMeta } from '../../lib/transport/envelope';

/** What msg.frame holds along a worker's pipeline (plain data: it is cloned on fan-out). */
export interface WireFrame extends Partial<FrameMeta> {
  camera?: string;
  receivedAt: number;
  worker: string;
  /** set where the acknowledgement is held: the key that releases it */
  ack?: string;
  /** the frame's place in deeplab-frame's window */
  slot?: number;
  /** on deeplab-result's picture message: not an answer (its Complete is ignored) */
  picture?: boolean;
}

export const WORKER_NAME = process.env.DEEPLAB_WORKER || `${os.hostname()}:${process.pid}`;

