/**
 * What the reliability suite measures of a running Node-RED, per case:
 *  - RSS peak of the whole process (all threads): /proc/<pid>/status VmHWM, reset per case through
 *    /proc/<pid>/clear_refs; also sampled every 100 ms from here, which arms a watchdog that kills
 *    Node-RED past a cap, so a case that would fill the machine's memory fails instead;
 *  - main-loop stall: the longest event-loop delay inside Node-RED (perf_hooks'
 *    monitorEventLoopDelay, started by the user directory's settings.js, read at /__probe);
 *  - Admin API latency: GET /flows back to back (25 ms apart) while the case runs, p99 and max;
 *  - compute workers and threads, for the redeploy case.
 * The user directory links the installed package (test/e2e/harness installs it once per run).
 */
import * as fs from 'fs';
import * as path from 'path';
import { installPackage, NodeRed, OUT } from '../e2e/harness';

/** Settings of the reliability user directory: the e2e settings plus the probe. */
const SETTINGS = `/* global module, require, process, global */
const path = require('path');
const { monitorEventLoopDelay } = require('perf_hooks');
const loop = monitorEventLoopDelay({ resolution: 5 });
loop.enable();
const POOL = path.join('dist', 'lib', 'compute', 'pool.js');
function workers() {
  const key = Object.keys(require.cache).find((k) => k.endsWith(POOL));
  return key ? require.cache[key].exports.getPool().workers.length : 0;
}
module.exports = {
  uiHost: '127.0.0.1',
  flowFile: 'flows.json',
  credentialSecret: false,
  telemetry: { enabled: false, updateNotification: false },
  externalModules: { autoInstall: false, palette: { allowInstall: false } },
  editorTheme: { tours: false, projects: { enabled: false } },
  logging: { console: { level: 'info', metrics: false, audit: false } },
  httpAdminMiddleware: function (req, res, next) {
    if (req.url.split('?')[0] !== '/__probe') return next();
    const out = { stallMaxMs: loop.max / 1e6, stallP99Ms: loop.percentile(99) / 1e6, rss: process.memoryUsage.rss(), workers: workers() };
    if (req.url.includes('reset')) loop.reset();
    // A full collection on request (Node-RED runs with --expose-gc here), so that memory still
    // held after a case is told apart from garbage nobody collected yet.
    if (req.url.includes('gc') && typeof global.gc === 'function') {
      global.gc();
      const m = process.memoryUsage();
      out.rssAfterGc = m.rss;
      out.mainHeap = m.heapUsed;
      out.mainExternal = m.external;
    }
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(out));
  },
};
`;

/** A user directory for the suite: its own settings and flows, the installed package linked in. */
export async function reliabilityUserDir(): Promise<string> {
  const installed = await installPackage();
  const dir = path.join(OUT, 'reliability-userdir');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  fs.symlinkSync(path.join(installed, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  fs.copyFileSync(path.join(installed, 'package.json'), path.join(dir, 'package.json'));
  fs.writeFileSync(path.join(dir, 'settings.js'), SETTINGS);
  return dir;
}

export interface ProcStatus {
  rss: number;
  peak: number;
  threads: number;
}

export function procStatus(pid: number): ProcStatus | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM'), threads: Number(/^Threads:\s+(\d+)/m.exec(text)?.[1] ?? 0) };
}

export interface Probe {
  stallMaxMs: number;
  stallP99Ms: number;
  rss: number;
  workers: number;
}

export async function probe(red: NodeRed, reset = false): Promise<Probe> {
  const r = await fetch(`${red.url}/__probe${reset ? '?reset=1' : ''}`);
  return (await r.json()) as Probe;
}

export interface AfterGc {
  /** The whole process (every thread). */
  rss: number;
  /** The main thread's V8 heap in use and its external memory (Buffers, typed arrays). */
  mainHeap: number;
  mainExternal: number;
}

/** Node-RED's memory after a full garbage collection of its main thread (the heap of the flows). */
export async function memoryAfterGc(red: NodeRed): Promise<AfterGc> {
  const r = await fetch(`${red.url}/__probe?gc=1`);
  const p = (await r.json()) as Probe & { rssAfterGc?: number; mainHeap: number; mainExternal: number };
  if (p.rssAfterGc === undefined) throw new Error('Node-RED was not started with --expose-gc');
  return { rss: p.rssAfterGc, mainHeap: p.mainHeap, mainExternal: p.mainExternal };
}

export async function rssAfterGc(red: NodeRed): Promise<number> {
  return (await memoryAfterGc(red)).rss;
}

/** The environment that lets the probe collect garbage on request. */
/**
 * Node-RED's environment in the suite: gc() exposed for the probes, and the compute workers'
 * idle collection after 1 s instead of 35 s, so RSS after a case is read once the workers have
 * handed back what their last jobs left (lib/runtime/idle-gc), inside settledRss's few seconds.
 */
export const PROBE_ENV = { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --expose-gc`.trim(), DEEPLAB_WORKER_IDLE_GC_MS: '1000' };

export interface CaseFigures {
  name: string;
  /** Wall time of the case (a figure, never asserted). */
  seconds: number;
  rssBeforeMB: number;
  rssPeakMB: number;
  rssAfterMB: number;
  stallMaxMs: number;
  adminP99Ms: number;
  adminMaxMs: number;
  adminProbes: number;
  answered: number;
  ok: number;
  unavailable: number;
  failed: number;
  note: string;
}

const MB = 1 << 20;

function percentile(values: number[], p: number): number {
  if (!values.length) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

/** Measures one case: start() before the load, stop() after it (see the module comment). */
export class CaseMonitor {
  private latencies: number[] = [];
  private running = false;
  private adminLoop?: Promise<void>;
  private sampler?: NodeJS.Timeout;
  private sampledPeak = 0;
  private rssBefore = 0;
  private t0 = 0;
  /** Set when the watchdog killed Node-RED. */
  killedAt?: number;

  constructor(private readonly red: NodeRed, private readonly capBytes: number) {}

  async start(): Promise<void> {
    const pid = this.red.pid;
    if (!pid) throw new Error('Node-RED is not running');
    try {
      fs.writeFileSync(`/proc/${pid}/clear_refs`, '5'); // resets VmHWM to the current RSS
    } catch {
      // not allowed here: the 100 ms samples still give the peak
    }
    await probe(this.red, true);
    this.rssBefore = procStatus(pid)?.rss ?? 0;
    this.sampledPeak = this.rssBefore;
    this.latencies = [];
    this.t0 = performance.now();
    this.running = true;
    this.sampler = setInterval(() => {
      const st = procStatus(pid);
      if (!st) return;
      this.sampledPeak = Math.max(this.sampledPeak, st.rss);
      if (st.rss > this.capBytes && this.killedAt === undefined) {
        this.killedAt = st.rss;
        void this.red.kill();
      }
    }, 100);
    this.adminLoop = (async () => {
      while (this.running) {
        const t0 = performance.now();
        try {
          const r = await fetch(`${this.red.url}/flows`, { headers: { 'Node-RED-API-Version': 'v1' } });
          await r.arrayBuffer();
          if (r.ok) this.latencies.push(performance.now() - t0);
        } catch {
          if (!this.red.pid) return;
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    })();
  }

  async stop(name: string, counts: Partial<Pick<CaseFigures, 'answered' | 'ok' | 'unavailable' | 'failed'>> = {}, note = ''): Promise<CaseFigures> {
    this.running = false;
    await this.adminLoop;
    clearInterval(this.sampler);
    const pid = this.red.pid;
    const st = pid ? procStatus(pid) : undefined;
    const p = pid ? await probe(this.red).catch(() => undefined) : undefined;
    return {
      name,
      seconds: (performance.now() - this.t0) / 1000,
      rssBeforeMB: this.rssBefore / MB,
      rssPeakMB: Math.max(this.sampledPeak, st?.peak ?? 0) / MB,
      rssAfterMB: (st?.rss ?? NaN) / MB,
      stallMaxMs: p?.stallMaxMs ?? NaN,
      adminP99Ms: percentile(this.latencies, 99),
      adminMaxMs: this.latencies.length ? Math.max(...this.latencies) : NaN,
      adminProbes: this.latencies.length,
      answered: counts.answered ?? 0,
      ok: counts.ok ?? 0,
      unavailable: counts.unavailable ?? 0,
      failed: counts.failed ?? 0,
      note: this.killedAt !== undefined ? `KILLED by the watchdog at RSS ${(this.killedAt / MB).toFixed(0)} MB${note ? `; ${note}` : ''}` : note,
    };
  }
}

/** The figures as a table (printed by the suite). */
export function figuresTable(rows: CaseFigures[]): string {
  const head = ['case', 'time', 'RSS before', 'RSS peak', 'RSS after', 'main-loop stall', 'Admin p99 (max, n)', 'answered: 200 / 503 / 4xx', 'note'];
  const f = (v: number, d = 0) => (Number.isFinite(v) ? v.toFixed(d) : '-');
  const body = rows.map((r) => [
    r.name, `${f(r.seconds, 1)} s`, `${f(r.rssBeforeMB)} MB`, `${f(r.rssPeakMB)} MB`, `${f(r.rssAfterMB)} MB`, `${f(r.stallMaxMs)} ms`,
    `${f(r.adminP99Ms)} ms (${f(r.adminMaxMs)}, ${r.adminProbes})`, `${r.answered}: ${r.ok} / ${r.unavailable} / ${r.failed}`, r.note,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}
