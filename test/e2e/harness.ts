/**
 * End-to-end harness: packs this package with `npm pack`, installs the tarball into a fresh
 * Node-RED user directory as a user would (`npm install <tarball>`), and runs a real Node-RED 4.1
 * process (node-red/red.js from the devDependencies) on a free loopback port. The flows are
 * deployed through the Admin API; node status and debug messages are read from the editor's
 * websocket (/comms), the same channel the editor itself uses.
 *
 * Everything lands in test-output/e2e/ (git-ignored): the tarball, the user directory, logs and
 * screenshots. DEEPLAB_E2E=0 skips the end-to-end tests.
 */
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import { ChildProcess, execFile, spawn } from 'child_process';

export const ROOT = path.resolve(__dirname, '..', '..', '..');
/**
 * This run's folder: test-output/e2e/run-<pid>/ (the tarball, user directory, logs, screenshots).
 * Per process, because several test runs may share one checkout; folders of runs whose process
 * has ended are removed when the next run starts.
 */
export const OUT = path.join(ROOT, 'test-output', 'e2e', `run-${process.pid}`);
const rootPkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
export const PKG_NAME = rootPkg.name;

export const e2eEnabled = process.env.DEEPLAB_E2E !== '0';

/**
 * How long a wait may take before it counts as a hang: waits end on a condition (files written, a
 * status reached), and this only stops a run that would never end. It is not a bound on compute
 * speed (a loaded CI machine must not fail a test for being slow).
 */
export const HANG_MS = 600_000;

function sh(cmd: string, args: string[], cwd: string, timeoutMs = HANG_MS): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, timeout: timeoutMs, maxBuffer: 64 << 20, env: { ...process.env, npm_config_loglevel: 'error' } }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

let installing: Promise<string> | undefined;

/**
 * Packs the package and installs it into a fresh user directory (once per test process; the
 * runtime and browser tests share it). Resolves with the user directory.
 */
export function installPackage(): Promise<string> {
  if (!installing) installing = doInstall();
  return installing;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function pruneOldRuns(): void {
  const parent = path.dirname(OUT);
  if (!fs.existsSync(parent)) return;
  for (const d of fs.readdirSync(parent)) {
    const m = /^run-(\d+)$/.exec(d);
    if (m && Number(m[1]) !== process.pid && !alive(Number(m[1]))) fs.rmSync(path.join(parent, d), { recursive: true, force: true });
  }
}

async function doInstall(): Promise<string> {
  pruneOldRuns();
  const userDir = path.join(OUT, 'userdir');
  fs.rmSync(OUT, { recursive: true, force: true });
  fs.mkdirSync(userDir, { recursive: true });
  const packed = JSON.parse(await sh(NPM, ['pack', '--json', '--pack-destination', OUT], ROOT)) as { filename: string }[];
  const tarball = path.join(OUT, packed[0].filename);
  fs.writeFileSync(path.join(userDir, 'package.json'), JSON.stringify({ name: 'node-red-project', private: true, version: '0.0.1' }, null, 2));
  // --prefer-offline: the dependencies come from npm's cache (filled by `npm ci`), the registry only when missing.
  await sh(NPM, ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], userDir);
  // (the global comment: the project's lint also walks test-output/)
  fs.writeFileSync(path.join(userDir, 'settings.js'), `/* global module */
module.exports = {
  uiHost: '127.0.0.1',
  flowFile: 'flows.json',
  credentialSecret: false,
  telemetry: { enabled: false, updateNotification: false },
  externalModules: { autoInstall: false, palette: { allowInstall: false } },
  editorTheme: { tours: false, projects: { enabled: false } },
  logging: { console: { level: 'info', metrics: false, audit: false } },
};
`);
  return userDir;
}

/** The installed copy of the package inside a user directory. */
export function installedPackageDir(userDir: string): string {
  return path.join(userDir, 'node_modules', ...PKG_NAME.split('/'));
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function waitFor<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, ms: number, every = 200): Promise<T> {
  const t0 = Date.now();
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}${lastErr ? ` (last error: ${(lastErr as Error).message})` : ''}`);
    await sleep(every);
  }
}

export interface CommsEvent {
  topic: string;
  data: unknown;
}
export interface NodeStatus {
  fill?: string;
  shape?: string;
  text?: string;
}
export interface DebugMessage {
  id: string;
  name?: string;
  msg: string;
  format: string;
  topic?: string;
  property?: string;
}

interface WsLike {
  on(event: 'message', cb: (data: Buffer | string) => void): void;
  on(event: 'open' | 'close', cb: () => void): void;
  on(event: 'error', cb: (err: Error) => void): void;
  send(data: string): void;
  close(): void;
}
// `ws` comes with Node-RED (Node 20 has no WebSocket client of its own without a flag).
const WebSocketImpl = require(require.resolve('ws', { paths: [path.dirname(require.resolve('node-red/package.json'))] })) as new (url: string) => WsLike;

export class NodeRed {
  readonly url: string;
  readonly log: string[] = [];
  readonly statuses = new Map<string, NodeStatus[]>();
  readonly debug: DebugMessage[] = [];
  private child?: ChildProcess;
  private ws?: WsLike;
  private exited?: Promise<number | null>;

  constructor(
    readonly userDir: string,
    readonly port: number,
    private readonly env: Record<string, string> = {},
  ) {
    this.url = `http://127.0.0.1:${port}`;
  }

  /** Starts Node-RED with its cwd in the user directory (relative file paths in the flows resolve there). */
  async start(): Promise<void> {
    const red = require.resolve('node-red/red.js');
    const logFile = fs.createWriteStream(path.join(OUT, `node-red-${this.port}.log`));
    const child = spawn(process.execPath, [red, '--userDir', this.userDir, '--port', String(this.port), '--settings', path.join(this.userDir, 'settings.js')], {
      cwd: this.userDir,
      env: {
        ...process.env,
        DEEPLAB_SAMPLES_DIR: path.join(installedPackageDir(this.userDir), 'sample-data'),
        ...this.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
    const onData = (d: Buffer) => {
      const s = d.toString();
      logFile.write(s);
      this.log.push(...s.split('\n').filter(Boolean));
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.on('exit', () => logFile.end());
    await waitFor('Node-RED to listen', async () => {
      if (child.exitCode !== null) throw new Error(`Node-RED exited (${child.exitCode}):\n${this.log.slice(-30).join('\n')}`);
      const r = await fetch(`${this.url}/settings`).catch(() => undefined);
      return r?.ok;
    }, HANG_MS, 250);
    await this.connectComms();
  }

  private connectComms(): Promise<void> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocketImpl(`ws://127.0.0.1:${this.port}/comms`);
      this.ws = ws;
      ws.on('open', () => {
        ws.send(JSON.stringify({ subscribe: 'status/#' }));
        ws.send(JSON.stringify({ subscribe: 'debug' }));
        resolve();
      });
      ws.on('error', reject);
      ws.on('message', (data) => {
        let events: CommsEvent[];
        try {
          const parsed = JSON.parse(data.toString()) as CommsEvent | CommsEvent[];
          events = Array.isArray(parsed) ? parsed : [parsed];
        } catch {
          return;
        }
        for (const e of events) {
          if (e.topic?.startsWith('status/')) {
            const id = e.topic.slice('status/'.length);
            const list = this.statuses.get(id) ?? [];
            list.push(e.data as NodeStatus);
            this.statuses.set(id, list);
          } else if (e.topic === 'debug') {
            this.debug.push(e.data as DebugMessage);
          }
        }
      });
    });
  }

  /** The Node-RED process id (while it runs). */
  get pid(): number | undefined {
    return this.child?.exitCode === null && this.child.signalCode === null ? this.child.pid : undefined;
  }

  /** Kills Node-RED at once (SIGKILL: no node is closed), as a crash or `kill -9` would. */
  async kill(): Promise<void> {
    this.ws?.close();
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGKILL');
    await this.exited;
  }

  lastStatus(id: string): NodeStatus | undefined {
    const l = this.statuses.get(id);
    return l?.[l.length - 1];
  }

  /** Replaces every flow (a full deploy, as the editor's Deploy button does). */
  async deploy(flows: unknown[]): Promise<void> {
    const started = this.startedCount();
    const r = await fetch(`${this.url}/flows`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'Node-RED-Deployment-Type': 'full', 'Node-RED-API-Version': 'v1' },
      body: JSON.stringify(flows),
    });
    if (!r.ok) throw new Error(`deploy failed: HTTP ${r.status} ${await r.text()}`);
    // The Admin API answers before the new flows have started (http-in routes, inject buttons).
    await waitFor('the deployed flows to start', () => this.startedCount() > started, HANG_MS, 50);
  }

  /** How many times the runtime has (re)started its flows: a deploy finished when this grows. */
  startedCount(): number {
    return this.log.filter((l) => l.includes('[info] Started flows')).length;
  }

  async flows(): Promise<{ id: string; type: string; [k: string]: unknown }[]> {
    const r = await fetch(`${this.url}/flows`, { headers: { 'Node-RED-API-Version': 'v1' } });
    return (await r.json()) as { id: string; type: string }[];
  }

  /** Presses an inject node's button, as the editor does. */
  async inject(id: string): Promise<void> {
    const r = await fetch(`${this.url}/inject/${id}`, { method: 'POST' });
    if (!r.ok) throw new Error(`inject ${id}: HTTP ${r.status} ${await r.text()}`);
  }

  /** Log lines at error level, or a process crash, since `from`. */
  errors(from = 0): string[] {
    return this.log.slice(from).filter((l) => /\[error\]|Unhandled|uncaught|FATAL/i.test(l));
  }

  /** Stops Node-RED cleanly (SIGINT: it closes every node) and checks it exits. */
  async stop(): Promise<number | null> {
    this.ws?.close();
    const child = this.child;
    if (!child || child.exitCode !== null) return child?.exitCode ?? null;
    child.kill('SIGINT');
    const timer = setTimeout(() => child.kill('SIGKILL'), HANG_MS); // a hang guard: a clean exit is what the tests check
    const code = await this.exited;
    clearTimeout(timer);
    return code ?? null;
  }
}

/** Every flow file shipped in examples/ (Import > Examples lists them by file name). */
export function exampleFiles(): string[] {
  const dir = path.join(ROOT, 'examples');
  return fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort().map((f) => path.join(dir, f));
}

export function readFlow(file: string): { id: string; type: string; z?: string; [k: string]: unknown }[] {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as { id: string; type: string }[];
}
