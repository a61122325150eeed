/** Messages between the training controller (main thread) and its training worker. */
import type { MetricsReport } from '../metrics/confusion';
import type { TrainConfig } from './config';
import type { CrfGrid, CrfSearchResult, CrfTrial } from './crf-search';
import type { CheckpointInfo, ProgressInfo } from './trainer';

export interface CrfRequest {
  /** Validation images used (default 10; 0: all). */
  images?: number;
  grid?: Partial<CrfGrid>;
  rule?: 'voc' | 'present';
}

export type ResumeMode = 'auto' | 'never' | 'require';

export type ToWorker =
  | { type: 'start'; config: TrainConfig; resume: ResumeMode; crfAfter?: CrfRequest }
  | { type: 'pause' }
  | { type: 'resume' }
  | { type: 'stop' }
  | { type: 'crf'; config: TrainConfig; request: CrfRequest };

export interface StartedInfo {
  iteration: number;
  maxIter: number;
  resumedFrom?: string;
  params: number;
  backend: string;
  notes: string[];
}

export type FromWorker =
  | { type: 'ready'; backend: string }
  | { type: 'started'; info: StartedInfo }
  | { type: 'progress'; progress: ProgressInfo }
  | { type: 'eval'; iteration: number; report: MetricsReport; best: boolean }
  | { type: 'checkpoint'; checkpoint: CheckpointInfo }
  | { type: 'paused'; iteration: number }
  | { type: 'resumed'; iteration: number }
  | { type: 'done'; reason: 'finished' | 'stopped'; iteration: number; maxIter: number; bestMeanIoU?: number | null; crfNext: boolean }
  | { type: 'crf-started'; images: number; trials: number }
  | { type: 'crf-progress'; done: number; total: number; trial: CrfTrial }
  | { type: 'crf'; result: CrfSearchResult }
  | { type: 'log'; text: string }
  | { type: 'error'; message: string; name: string; phase: 'training' | 'crf' };
