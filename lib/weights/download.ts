/**
 * Fetches published weights into a local cache: streamed to `<dest>.part` (never held in memory),
 * resumed with an HTTP Range request, checked against the published sha256 (or its prefix),
 * flushed and renamed atomically, with redirects followed and concurrent requests for one file
 * sharing a single download. ensurePublished() adds the cache policy on top: reuse a verified
 * file (remembered in a small `.ok` marker so a 170 MB file is not hashed on every start), and
 * for checkpoints that can only be fetched by hand, say exactly where to put them. fetchBytes() is
 * the in-memory GET of every other URL load (saved models, TF.js graphs), with the same time limits
 * (HttpTimeouts) and errors that name the URL and the cause.
 */
import { createHash, Hash, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as fsp from 'fs/promises';
import * as http from 'http';
import * as https from 'https';
import * as os from 'os';
import * as path from 'path';
import { pipeline } from 'stream/promises';
import { findPublished, PublishedEntry } from './catalogue';

export interface DownloadProgress {
  /** Bytes of the file present so far (a resumed part included). */
  received: number;
  total?: number;
  percent?: number;
  /** Transfer rate of this download (resumed bytes not counted). */
  bytesPerSec: number;
}

/** "45 % · 12.3 MB/s" (or the megabytes so far where the size is unknown): one wording for the status and the CLI. */
export function describeProgress(d: DownloadProgress): string {
  const done = d.percent !== undefined ? `${d.percent.toFixed(0)} %` : `${(d.received / 1e6).toFixed(1)} MB`;
  return `${done} · ${(d.bytesPerSec / 1e6).toFixed(1)} MB/s`;
}

/**
 * Time limits of one URL load. Each is taken from the option, else the environment, else the default:
 *   connectTimeoutMs  until the response headers arrive (DNS, connect, TLS, a silent server):
 *                     $DEEPLAB_CONNECT_TIMEOUT seconds, default 15 s
 *   idleTimeoutMs     the longest silence while the body streams: default 30 s
 *   totalTimeoutMs    the whole load, retries and redirects included: $DEEPLAB_DOWNLOAD_TIMEOUT
 *                     seconds, default none (0: a large file on a slow link is not cut off while it
 *                     moves; the idle timeout catches a stalled one)
 */
export interface HttpTimeouts {
  connectTimeoutMs?: number;
  idleTimeoutMs?: number;
  totalTimeoutMs?: number;
}

export const CONNECT_TIMEOUT_ENV = 'DEEPLAB_CONNECT_TIMEOUT';
export const TOTAL_TIMEOUT_ENV = 'DEEPLAB_DOWNLOAD_TIMEOUT';

/** Seconds from the environment as ms; undefined when unset; a clear error when not a number >= 0. */
function envSeconds(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < 0) throw new Error(`${name} must be a number of seconds >= 0, got "${raw}"`);
  return Math.round(v * 1000);
}

/** The limits in force: options first, then the environment, then the defaults (see HttpTimeouts). */
export function resolveTimeouts(o: HttpTimeouts = {}): Required<HttpTimeouts> {
  return {
    connectTimeoutMs: o.connectTimeoutMs ?? envSeconds(CONNECT_TIMEOUT_ENV) ?? DEFAULTS.connectTimeoutMs,
    idleTimeoutMs: o.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs,
    totalTimeoutMs: o.totalTimeoutMs ?? envSeconds(TOTAL_TIMEOUT_ENV) ?? 0,
  };
}

export interface DownloadOptions extends HttpTimeouts {
  sha256?: string;
  hashPrefix?: string;
  size?: number;
  onProgress?: (p: DownloadProgress) => void;
  signal?: AbortSignal;
  /** Added to every error: e.g. where to put the file by hand. */
  hint?: string;
  /** Automatic resumes after the connection breaks mid-body (only when bytes arrived). */
  retries?: number;
  maxRedirects?: number;
}

export interface DownloadResult {
  path: string;
  bytes: number;
  sha256: string;
  /** The URL the bytes came from, after redirects. */
  url: string;
}

/** A failed download: the message names the URL and the cause; `code` / `status` keep them for callers. */
export class DownloadError extends Error {
  constructor(message: string, readonly url: string, readonly code?: string, readonly status?: number) {
    super(message);
    this.name = 'DownloadError';
  }
}

const DEFAULTS = { connectTimeoutMs: 15000, idleTimeoutMs: 30000, retries: 3, maxRedirects: 10 };

/** Errors of the transfer itself, before they are wrapped with the URL. */
class Cause extends Error {
  constructor(message: string, readonly code?: string, readonly status?: number, readonly fatal = false) {
    super(message);
  }
}

function describe(e: unknown): { text: string; code?: string; status?: number } {
  if (e instanceof Cause) return { text: e.message, code: e.code, status: e.status };
  const err = e as NodeJS.ErrnoException;
  const code = typeof err?.code === 'string' ? err.code : undefined;
  const known: Record<string, string> = {
    ECONNREFUSED: 'connection refused (ECONNREFUSED): nothing listens there, or this machine is offline',
    ENOTFOUND: 'host not found (ENOTFOUND): no DNS, or this machine is offline',
    EAI_AGAIN: 'host name lookup failed (EAI_AGAIN): no DNS, or this machine is offline',
    ECONNRESET: 'connection reset (ECONNRESET)',
    ETIMEDOUT: 'connection timed out (ETIMEDOUT)',
    ENETUNREACH: 'network unreachable (ENETUNREACH): this machine is offline',
    ABORT_ERR: 'aborted',
  };
  const text = (code && known[code]) || `${err?.message ?? String(e)}${code && !String(err?.message).includes(code) ? ` (${code})` : ''}`;
  return { text, code };
}

function wrap(url: string, e: unknown, hint?: string, what = 'download of'): DownloadError {
  if (e instanceof DownloadError) return e;
  const d = describe(e);
  return new DownloadError(`${what} ${url} failed: ${d.text}${hint ? `; ${hint}` : ''}`, url, d.code, d.status);
}

/**
 * GET with a deadline for the response headers; redirects are the caller's business. The
 * timeout says which side was silent: no connection at all, or a server that took the
 * connection and never answered.
 */
function get(url: URL, headers: Record<string, string>, timeoutMs: number, signal?: AbortSignal): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const mod = url.protocol === 'https:' ? https : url.protocol === 'http:' ? http : undefined;
    if (!mod) return reject(new Cause(`unsupported protocol ${url.protocol}`, undefined, undefined, true));
    let connected = false;
    const req = mod.get(url, { headers: { 'user-agent': 'node-red-deeplab', ...headers }, signal }, (res) => {
      clearTimeout(timer);
      resolve(res);
    });
    req.on('socket', (socket) => {
      // A kept-alive socket is connected already.
      if (!socket.connecting) connected = true;
      else socket.once('connect', () => (connected = true));
    });
    const timer = setTimeout(() => req.destroy(connected
      ? new Cause(`no response within ${timeoutMs} ms (connect timeout: the server took the connection and sent nothing; ${CONNECT_TIMEOUT_ENV} or connectTimeoutMs sets it)`, 'ETIMEDOUT')
      : new Cause(`no response within ${timeoutMs} ms (connect timeout: no connection; ${CONNECT_TIMEOUT_ENV} or connectTimeoutMs sets it)`, 'ETIMEDOUT')), timeoutMs);
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/**
 * What an aborted transfer failed of, whatever the stream reported first: on Node 24 an aborted
 * response fails with ECONNRESET before the pipeline or the request sees the signal.
 */
function abortCause(signal: AbortSignal): Cause {
  return signal.reason instanceof Cause ? signal.reason : new Cause('aborted', 'ABORT_ERR', undefined, true);
}

/** The error a total timeout aborts with (fatal: a retry would only run past it again). */
function totalTimeoutCause(ms: number): Cause {
  return new Cause(`not finished within ${ms} ms (total timeout; ${TOTAL_TIMEOUT_ENV} or totalTimeoutMs sets it)`, 'ETIMEDOUT', undefined, true);
}

/**
 * A signal that aborts with `totalTimeoutCause` after `ms` (0: never) or when `outer` aborts;
 * `done()` clears the timer. `timedOut()` tells the two apart.
 */
function deadline(ms: number, outer?: AbortSignal): { signal?: AbortSignal; timedOut: () => Cause | undefined; done: () => void } {
  if (!(ms > 0)) return { signal: outer, timedOut: () => undefined, done: () => undefined };
  const ac = new AbortController();
  let fired: Cause | undefined;
  const timer = setTimeout(() => {
    fired = totalTimeoutCause(ms);
    ac.abort(fired);
  }, ms);
  const onOuter = () => ac.abort(outer!.reason);
  if (outer?.aborted) onOuter();
  else outer?.addEventListener('abort', onOuter, { once: true });
  return {
    signal: ac.signal,
    timedOut: () => fired,
    done: () => {
      clearTimeout(timer);
      outer?.removeEventListener('abort', onOuter);
    },
  };
}

export interface FetchOptions extends HttpTimeouts {
  signal?: AbortSignal;
  maxRedirects?: number;
}

/**
 * GETs a (small to medium) resource into memory: redirects followed, the connect, idle and total
 * timeouts of HttpTimeouts, and any failure thrown as a DownloadError whose message names the URL
 * and the cause ("GET <url> failed: connection refused (ECONNREFUSED)...", "HTTP 404 Not Found").
 */
export async function fetchBytes(url: string, opts: FetchOptions = {}): Promise<Buffer> {
  const t = resolveTimeouts(opts);
  const limit = deadline(t.totalTimeoutMs, opts.signal);
  const maxRedirects = opts.maxRedirects ?? DEFAULTS.maxRedirects;
  try {
    let current = new URL(url);
    for (let hops = 0; ; hops++) {
      const res = await get(current, {}, t.connectTimeoutMs, limit.signal);
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location) {
        res.resume();
        if (hops >= maxRedirects) throw new Cause(`more than ${maxRedirects} redirects`, 'EREDIRECT', status, true);
        current = new URL(res.headers.location, current);
        continue;
      }
      if (status < 200 || status >= 300) {
        res.resume();
        throw new Cause(`HTTP ${status} ${res.statusMessage ?? ''}`.trim(), `HTTP_${status}`, status);
      }
      const chunks: Buffer[] = [];
      const idle = setTimeout(() => res.destroy(new Cause(`no data for ${t.idleTimeoutMs} ms (idle timeout)`, 'ETIMEDOUT')), t.idleTimeoutMs);
      try {
        for await (const chunk of res) {
          idle.refresh();
          chunks.push(chunk as Buffer);
        }
      } finally {
        clearTimeout(idle);
      }
      if (!res.complete) throw new Cause('the connection closed before the whole response arrived', 'ECONNRESET');
      return Buffer.concat(chunks);
    }
  } catch (e) {
    throw wrap(url, limit.timedOut() ?? (opts.signal?.aborted ? abortCause(opts.signal) : e), undefined, 'GET');
  } finally {
    limit.done();
  }
}

async function hashFile(file: string, hash: Hash): Promise<void> {
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
}

async function sizeOf(file: string): Promise<number> {
  return fsp.stat(file).then((s) => s.size, () => 0);
}

async function fsyncFile(file: string): Promise<void> {
  const fh = await fsp.open(file, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function fsyncDir(dir: string): Promise<void> {
  // Makes the rename durable; not every platform can open a directory, so this is best effort.
  try {
    const fh = await fsp.open(dir, 'r');
    await fh.sync().finally(() => fh.close());
  } catch {
    /* best effort */
  }
}

/** Throws when the digest does not match the expected sha256 or prefix. */
function checkDigest(digest: string, o: DownloadOptions): void {
  const want = (o.sha256 ?? o.hashPrefix)?.toLowerCase();
  if (want && !digest.startsWith(want)) {
    throw new Cause(`checksum mismatch: expected sha256 ${o.sha256 ? want : want + '…'}, got ${digest}; the partial file was removed`, 'ECHECKSUM', undefined, true);
  }
}

type Emit = (p: DownloadProgress) => void;

/** One attempt: request (following redirects), append or restart the part, hash, verify, rename. */
async function attempt(url: string, dest: string, o: DownloadOptions, emit: Emit, progressed: { bytes: number }): Promise<DownloadResult> {
  const part = `${dest}.part`;
  let existing = await sizeOf(part);
  if (o.size !== undefined && existing > o.size) {
    await fsp.rm(part, { force: true });
    existing = 0;
  }
  let current = new URL(url);
  let res: http.IncomingMessage;
  for (let hops = 0; ; hops++) {
    res = await get(current, existing > 0 ? { range: `bytes=${existing}-` } : {}, o.connectTimeoutMs!, o.signal);
    const status = res.statusCode ?? 0;
    if (status >= 300 && status < 400 && res.headers.location) {
      res.resume();
      if (hops >= o.maxRedirects!) throw new Cause(`more than ${o.maxRedirects} redirects`, 'EREDIRECT', status, true);
      current = new URL(res.headers.location, current);
      continue;
    }
    if (status === 416 && existing > 0) {
      // The part may already be whole (a crash between download and rename); otherwise start over.
      res.resume();
      const total = Number(/\/(\d+)$/.exec(String(res.headers['content-range'] ?? ''))?.[1]);
      if (total === existing) break;
      await fsp.rm(part, { force: true });
      existing = 0;
      continue;
    }
    if (status === 206 && existing > 0) {
      const m = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(String(res.headers['content-range'] ?? ''));
      if (m && Number(m[1]) === existing) break;
      res.resume();
      await fsp.rm(part, { force: true });
      existing = 0;
      continue;
    }
    if (status === 200) {
      existing = 0; // a server that ignores Range sends the whole file: start the part over
      break;
    }
    res.resume();
    throw new Cause(`HTTP ${status} ${res.statusMessage ?? ''}`.trim(), `HTTP_${status}`, status, status >= 400 && status < 500);
  }

  const hash = createHash('sha256');
  let received = existing;
  let total: number | undefined;
  if (res.statusCode === 416) {
    total = existing;
  } else {
    const length = Number(res.headers['content-length']);
    total = Number.isFinite(length) && res.headers['content-length'] !== undefined ? existing + length : o.size;
  }
  if (existing > 0) await hashFile(part, hash);
  const started = Date.now();
  let fresh = 0;
  let lastEmit = 0;
  let lastPercent = -1;
  const report = (final: boolean): void => {
    const percent = total ? Math.min(100, (received / total) * 100) : undefined;
    const now = Date.now();
    if (!final && now - lastEmit < 100 && (percent === undefined || percent - lastPercent < 1)) return;
    lastEmit = now;
    lastPercent = percent ?? lastPercent;
    emit({ received, total, percent, bytesPerSec: fresh / Math.max(1e-3, (now - started) / 1000) });
  };
  report(true);
  if (res.statusCode !== 416) {
    const idle = setTimeout(() => res.destroy(new Cause(`no data for ${o.idleTimeoutMs} ms (idle timeout)`, 'ETIMEDOUT')), o.idleTimeoutMs!);
    try {
      await pipeline(
        res,
        async function* (source: AsyncIterable<Buffer>) {
          for await (const chunk of source) {
            idle.refresh();
            hash.update(chunk);
            received += chunk.length;
            fresh += chunk.length;
            progressed.bytes += chunk.length;
            report(false);
            yield chunk;
          }
        },
        fs.createWriteStream(part, { flags: existing > 0 ? 'a' : 'w' }),
        { signal: o.signal },
      );
    } finally {
      clearTimeout(idle);
    }
  }
  if (total !== undefined && received < total) throw new Cause(`connection closed after ${received} of ${total} bytes`, 'ECONNRESET');
  report(true);
  if (o.size !== undefined && received !== o.size) {
    await fsp.rm(part, { force: true });
    throw new Cause(`size mismatch: expected ${o.size} bytes, got ${received}; the partial file was removed`, 'ESIZE', undefined, true);
  }
  const digest = hash.digest('hex');
  try {
    checkDigest(digest, o);
  } catch (e) {
    await fsp.rm(part, { force: true });
    throw e;
  }
  await fsyncFile(part);
  await fsp.rename(part, dest);
  await fsyncDir(path.dirname(dest));
  return { path: dest, bytes: received, sha256: digest, url: current.href };
}

async function run(url: string, dest: string, opts: DownloadOptions, emit: Emit): Promise<DownloadResult> {
  const limit = deadline(opts.totalTimeoutMs!, opts.signal);
  try {
    return await runAttempts(url, dest, { ...opts, signal: limit.signal }, emit);
  } catch (e) {
    const timedOut = limit.timedOut();
    throw timedOut ? wrap(url, timedOut, opts.hint) : e;
  } finally {
    limit.done();
  }
}

async function runAttempts(url: string, dest: string, o: DownloadOptions, emit: Emit): Promise<DownloadResult> {
  await fsp.mkdir(path.dirname(dest), { recursive: true });
  // A retry resumes from what reached the disk, which can be less than what was counted before the
  // break: report nothing until it has caught up, so progress never runs backwards.
  let high = -1;
  const monotonic: Emit = (p) => {
    if (p.received < high) return;
    high = p.received;
    emit(p);
  };
  for (let i = 0; ; i++) {
    const progressed = { bytes: 0 };
    try {
      return await attempt(url, dest, o, monotonic, progressed);
    } catch (e) {
      if (o.signal?.aborted) throw wrap(url, abortCause(o.signal), o.hint);
      // Resume by itself only when this attempt moved bytes and the network (not the data) failed.
      const fatal = e instanceof Cause && e.fatal;
      if (fatal || progressed.bytes === 0 || i >= o.retries!) throw wrap(url, e, o.hint);
      await new Promise((r) => setTimeout(r, 100 * (i + 1)));
    }
  }
}

interface Shared {
  promise: Promise<DownloadResult>;
  listeners: Set<Emit>;
}
const inFlight = new Map<string, Shared>();

/**
 * Downloads `url` to `dest` (see the module comment). A second call for the same `dest` while one
 * runs joins it: one request, one promise, progress to both (the first caller's options and
 * signal govern the shared transfer).
 */
export function downloadFile(url: string, dest: string, opts: DownloadOptions = {}): Promise<DownloadResult> {
  const key = path.resolve(dest);
  const running = inFlight.get(key);
  if (running) {
    if (opts.onProgress) running.listeners.add(opts.onProgress);
    return running.promise;
  }
  const listeners = new Set<Emit>();
  if (opts.onProgress) listeners.add(opts.onProgress);
  const o: DownloadOptions = { ...DEFAULTS, ...opts };
  for (const k of Object.keys(DEFAULTS) as (keyof typeof DEFAULTS)[]) if (o[k] === undefined) o[k] = DEFAULTS[k];
  let timeouts: Required<HttpTimeouts>;
  try {
    timeouts = resolveTimeouts(opts);
  } catch (e) {
    return Promise.reject(wrap(url, e, opts.hint));
  }
  Object.assign(o, timeouts);
  const emit: Emit = (p) => {
    for (const l of listeners) {
      try {
        l(p);
      } catch {
        /* a listener's failure must not break the download */
      }
    }
  };
  const promise = run(url, key, o, emit).finally(() => inFlight.delete(key));
  inFlight.set(key, { promise, listeners });
  return promise;
}

/** `<userDir or ~/.node-red>/deeplab-weights`, or $DEEPLAB_WEIGHTS_CACHE when set. */
export function defaultCacheDir(userDir?: string): string {
  const env = process.env.DEEPLAB_WEIGHTS_CACHE;
  if (env && env.trim()) return path.resolve(env);
  return path.join(userDir ?? path.join(os.homedir(), '.node-red'), 'deeplab-weights');
}

export type EnsureOptions = Pick<DownloadOptions, 'onProgress' | 'connectTimeoutMs' | 'idleTimeoutMs' | 'totalTimeoutMs' | 'signal' | 'retries'>;

interface Marker {
  size: number;
  mtimeMs: number;
  sha256: string;
  files?: string[];
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  await hashFile(file, h);
  return h.digest('hex');
}

async function readMarker(file: string): Promise<Marker | undefined> {
  try {
    return JSON.parse(await fsp.readFile(`${file}.ok`, 'utf8')) as Marker;
  } catch {
    return undefined;
  }
}

async function writeMarker(file: string, m: Marker): Promise<void> {
  const tmp = `${file}.ok.${process.pid}.${randomBytes(4).toString('hex')}.tmp`; // unique: two callers may write at once
  await fsp.writeFile(tmp, JSON.stringify(m));
  await fsp.rename(tmp, `${file}.ok`);
}

/** The weight shards a TF.js model.json lists, as [url, local path]. */
async function tfjsShards(modelFile: string, modelUrl: string): Promise<[string, string][]> {
  const json = JSON.parse(await fsp.readFile(modelFile, 'utf8')) as { weightsManifest?: { paths?: string[] }[] };
  if (!Array.isArray(json.weightsManifest)) throw new Error(`${modelFile} is not a TF.js model.json (no weightsManifest)`);
  const base = new URL(modelUrl);
  const out: [string, string][] = [];
  for (const group of json.weightsManifest) {
    for (const p of group.paths ?? []) {
      if (p.includes('..') || path.isAbsolute(p)) throw new Error(`${modelFile}: unsafe shard path "${p}"`);
      const u = new URL(p, base);
      if (!u.search) u.search = base.search; // tfjs keeps the model URL's query (?tfjs-format=file) on the shards
      out.push([u.href, path.join(path.dirname(modelFile), p)]);
    }
  }
  return out;
}

/** Checks a file already in the cache once (size, hash) and remembers the result. */
async function verifyCached(entry: PublishedEntry, file: string): Promise<boolean> {
  const st = await fsp.stat(file);
  const m = await readMarker(file);
  if (m && m.size === st.size && m.mtimeMs === st.mtimeMs) {
    const shards = m.files ?? [];
    if ((await Promise.all(shards.map((f) => sizeOf(path.join(path.dirname(file), f))))).every((s) => s > 0)) return true;
  }
  if (entry.size !== undefined && st.size !== entry.size) return false;
  const digest = await sha256File(file);
  const want = entry.sha256 ?? entry.hashPrefix;
  if (want && !digest.startsWith(want)) return false;
  await writeMarker(file, { size: st.size, mtimeMs: st.mtimeMs, sha256: digest });
  return true;
}

async function fetchEntry(entry: PublishedEntry, file: string, opts: EnsureOptions): Promise<void> {
  const hint = `or download ${entry.url} by hand and place it at ${file}`;
  const base = { ...opts, sha256: entry.sha256, hashPrefix: entry.hashPrefix, size: entry.size, hint };
  const errors: DownloadError[] = [];
  for (const url of [entry.url!, ...(entry.mirrors ?? [])]) {
    try {
      const r = await downloadFile(url, file, base);
      let files: string[] | undefined;
      if (entry.format === 'tfjs-graph') {
        const shards = await tfjsShards(file, r.url);
        for (const [u, p] of shards) if ((await sizeOf(p)) === 0) await downloadFile(u, p, { ...opts, hint });
        files = shards.map(([, p]) => path.relative(path.dirname(file), p));
      }
      const st = await fsp.stat(file);
      await writeMarker(file, { size: st.size, mtimeMs: st.mtimeMs, sha256: r.sha256, files });
      return;
    } catch (e) {
      const err = wrap(url, e, hint);
      if (opts.signal?.aborted || err.code === 'ECHECKSUM') throw err;
      errors.push(err);
    }
  }
  if (errors.length === 1) throw errors[0];
  throw new DownloadError(`every location of "${entry.id}" failed: ${errors.map((e) => e.message).join(' | ')}`, entry.url!, errors[0].code);
}

/** Returns the local path of an entry's raw file, downloading it when needed (see the module comment). */
export async function ensureEntry(entry: PublishedEntry, cacheDir: string, opts: EnsureOptions = {}): Promise<string> {
  const file = path.join(cacheDir, ...entry.fileName.split('/'));
  const exists = (await sizeOf(file)) > 0;
  if (exists && (await verifyCached(entry, file))) {
    if (entry.format !== 'tfjs-graph' || (await readMarker(file))?.files) return file;
  }
  if (entry.manual) {
    const m = entry.manual;
    const where = m.download ? `${m.download} (linked from ${m.page})` : m.page;
    if (exists) throw new Error(`the file at ${file} does not match the published "${entry.id}" (size or checksum); download it again from ${where} and place it at ${file}`);
    throw new Error(`"${entry.id}" cannot be downloaded automatically: download it from ${where} and place the file at ${file}. ${m.instructions}`);
  }
  if (exists) await fsp.rm(file, { force: true });
  await fetchEntry(entry, file, opts);
  return file;
}

/** ensureEntry for a catalogue id (see catalogue.ts). */
export async function ensurePublished(id: string, cacheDir: string = defaultCacheDir(), opts: EnsureOptions = {}): Promise<string> {
  return ensureEntry(findPublished(id), cacheDir, opts);
}
