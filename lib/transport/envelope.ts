/**
 * The frame envelope and the result envelope of the MQTT scale-out path (README: "Many
 * cameras, many workers: MQTT"). A frame is one MQTT v5 PUBLISH: the encoded picture (JPEG or
 * PNG) as the payload, what it is in user properties (strings, as MQTT v5 carries them):
 *
 *   topic    deeplab/frames/<camera>
 *   camera   the camera id (also the topic's last level)
 *   frame    the frame id: unique per camera (a counter or a timestamp); results carry it back
 *   captured the capture time, milliseconds since the epoch
 *   width, height  the picture's size (checked against the picture's own header)
 *
 * A result is one PUBLISH on deeplab/results/<camera>: the label map as an indexed PNG (palette
 * index = class id, coloured with the model's palette, so it shows as a mask and reads back
 * exactly) and a JSON summary in the user property `result` (also msg.result): frame id,
 * per-class pixel counts, timings, worker; `ok: false` with an error for a frame that failed.
 */
import { ContractError, LabelMap } from '../contract';
import { decodeImage, DEFAULT_MAX_PIXELS } from '../data/image';
import type { RawImage } from '../contract';

export const FRAMES_TOPIC = 'deeplab/frames';
export const RESULTS_TOPIC = 'deeplab/results';
/** msg.error.code of a frame this package refuses (the error result carries it too). */
export const BAD_FRAME = 'DEEPLAB_BAD_FRAME';

export interface FrameMeta {
  camera: string;
  frameId: string;
  /** ms since the epoch */
  captureTime: number;
  width: number;
  height: number;
}

export type UserProperties = Record<string, string | string[]>;

export class FrameError extends ContractError {
  readonly code = BAD_FRAME;
}

/** A camera id is one topic level: no MQTT wildcards, separators or control characters. */
/** One topic level: no separator, wildcard or control character (char codes below 32). */
function badLevel(s: string): boolean {
  return /[/#+]/.test(s) || [...s].some((ch) => ch.charCodeAt(0) < 32);
}

export function checkCameraId(camera: string): string {
  if (!camera || camera.length > 128 || badLevel(camera)) {
    throw new FrameError(`camera id must be 1-128 characters without '/', '+', '#' or control characters, got ${JSON.stringify(camera)}`);
  }
  return camera;
}

/**
 * A topic prefix from a node's config: levels without wildcards or control characters, no empty
 * level (so no leading, trailing or doubled '/'), at most 200 characters. Blank: the default.
 */
export function checkTopicPrefix(prefix: string): string {
  const levels = prefix.split('/');
  if (prefix.length > 200 || levels.some((l) => !l || badLevel(l))) {
    throw new Error(`topic prefix must be topic levels separated by '/', without '+', '#', empty levels or control characters, got ${JSON.stringify(prefix)}`);
  }
  return prefix;
}

export function frameTopic(camera: string, prefix = FRAMES_TOPIC): string {
  return `${prefix}/${checkCameraId(camera)}`;
}

export function resultTopic(camera: string, prefix = RESULTS_TOPIC): string {
  return `${prefix}/${checkCameraId(camera)}`;
}

export function frameUserProperties(m: FrameMeta): Record<string, string> {
  return { camera: m.camera, frame: m.frameId, captured: String(m.captureTime), width: String(m.width), height: String(m.height) };
}

function one(p: UserProperties | undefined, name: string): string | undefined {
  const v = p?.[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The camera a frame belongs to, as far as it can be told (for an error result): property, else topic. */
export function cameraOf(p: UserProperties | undefined, topic: string | undefined): string | undefined {
  const c = one(p, 'camera') ?? (typeof topic === 'string' ? topic.split('/').pop() : undefined);
  return c && !badLevel(c) ? c : undefined;
}

/** Reads and checks the user properties of a frame; throws FrameError naming what is wrong. */
export function readFrameMeta(p: UserProperties | undefined, topic?: string): FrameMeta {
  if (!p || typeof p !== 'object') {
    throw new FrameError('frame has no MQTT v5 user properties (camera, frame, captured, width, height): publish with MQTT v5 and the deeplab-frame node, or set them yourself');
  }
  const missing = ['frame', 'captured', 'width', 'height'].filter((k) => one(p, k) === undefined);
  const camera = cameraOf(p, topic);
  if (!camera) missing.unshift('camera');
  if (missing.length) throw new FrameError(`frame lacks the user properties ${missing.join(', ')}`);
  const int = (k: string, min: number): number => {
    const s = one(p, k)!;
    const v = Number(s);
    if (!/^\d+$/.test(s) || !Number.isSafeInteger(v) || v < min) throw new FrameError(`user property ${k} must be an integer >= ${min}, got ${JSON.stringify(s)}`);
    return v;
  };
  const frameId = one(p, 'frame')!;
  if (!frameId || frameId.length > 128) throw new FrameError(`user property frame must be 1-128 characters, got ${JSON.stringify(frameId)}`);
  return { camera: checkCameraId(camera!), frameId, captureTime: int('captured', 0), width: int('width', 1), height: int('height', 1) };
}

/**
 * Decodes a frame's picture, refusing by its header (before any pixel is decoded) what is over
 * maxPixels or does not match the size in its properties.
 */
export async function decodeFrame(payload: unknown, meta: FrameMeta, maxPixels = DEFAULT_MAX_PIXELS): Promise<RawImage> {
  if (!Buffer.isBuffer(payload) || payload.length === 0) {
    throw new FrameError(`frame payload must be the encoded picture's bytes (a Buffer: set the mqtt-in node's output to "a Buffer"), got ${payload === undefined ? 'nothing' : typeof payload}`);
  }
  try {
    return await decodeImage(payload, {
      maxPixels,
      check: (w, h) => {
        if (w !== meta.width || h !== meta.height) throw new FrameError(`picture is ${w}x${h}, its properties say ${meta.width}x${meta.height}`);
      },
    });
  } catch (err) {
    if (err instanceof FrameError) throw err;
    throw new FrameError((err as Error).message);
  }
}

/** Pixels per class of a label map (ignore index counted apart). */
export function classCounts(labels: LabelMap, names: readonly string[]): { counts: Record<string, number>; ignored: number } {
  const hist = new Float64Array(256);
  const d = labels.data;
  for (let i = 0; i < d.length; i++) hist[d[i]]++;
  const counts: Record<string, number> = {};
  for (let c = 0; c < 256; c++) {
    if (!hist[c] || c === labels.ignoreIndex) continue;
    counts[names[c] ?? String(c)] = hist[c];
  }
  return { counts, ignored: labels.ignoreIndex >= 0 && labels.ignoreIndex < 256 ? hist[labels.ignoreIndex] : 0 };
}

export interface ResultSummary {
  ok: boolean;
  camera: string;
  frameId: string | null;
  captureTime: number | null;
  worker: string;
  width?: number;
  height?: number;
  /** class name -> pixels */
  counts?: Record<string, number>;
  timings?: { receivedAt: number; publishedAt: number; transitMs: number | null; processMs: number };
  error?: { code: string; message: string };
}
