/**
 * A Mosquitto 2 broker for the tests and the bench: its own config, persistence folder and log in
 * test-output/, on a free loopback port; stopped (SIGTERM: it saves its sessions) and started
 * again on the same port with the same state. Needs the Debian package `mosquitto` (.ci/run
 * installs it); a missing broker fails the test that needs it.
 */
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import { ChildProcess, spawn } from 'child_process';
import { freePort, sleep, waitFor } from '../e2e/harness';

export function mosquittoPath(): string {
  const candidates = [process.env.MOSQUITTO, '/usr/sbin/mosquitto', '/usr/local/sbin/mosquitto', '/usr/bin/mosquitto', '/opt/homebrew/sbin/mosquitto'];
  for (const c of candidates) if (c && fs.existsSync(c)) return c;
  throw new Error('mosquitto not found: install it (Debian/Ubuntu: apt-get install mosquitto; .ci/run does) or set MOSQUITTO=/path/to/mosquitto');
}

export interface BrokerOptions {
  /** Mosquitto's max_inflight_messages: unacknowledged QoS 1 messages a client may hold at once. */
  maxInflight: number;
}

export class Broker {
  port = 0;
  private child?: ChildProcess;
  private exited?: Promise<void>;
  readonly logFile: string;
  private readonly confFile: string;

  constructor(readonly dir: string, readonly opts: BrokerOptions) {
    this.logFile = path.join(dir, 'mosquitto.log');
    this.confFile = path.join(dir, 'mosquitto.conf');
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (!this.port) {
      fs.rmSync(this.dir, { recursive: true, force: true });
      fs.mkdirSync(this.dir, { recursive: true });
      this.port = await freePort();
      const user = process.getuid?.() === 0 ? 'user root\n' : '';
      fs.writeFileSync(this.confFile, [
        `listener ${this.port} 127.0.0.1`,
        'allow_anonymous true',
        // Sessions, their subscriptions and their queued/in-flight QoS 1 messages survive a broker restart.
        'persistence true',
        `persistence_location ${this.dir}/`,
        'autosave_interval 5',
        `max_inflight_messages ${this.opts.maxInflight}`,
        // The broker holds a disconnected (or slow) worker's share of the frames; the default 1000 would drop above it.
        'max_queued_messages 100000',
        `log_dest file ${this.logFile}`,
        'log_type error', 'log_type warning', 'log_type notice', 'log_type information', 'log_type subscribe',
        'connection_messages true',
        user,
      ].join('\n'));
    }
    const child = spawn(mosquittoPath(), ['-c', this.confFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    let err = '';
    child.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
    this.exited = new Promise((resolve) => child.on('exit', () => resolve()));
    await waitFor('mosquitto to listen', () => {
      if (child.exitCode !== null) throw new Error(`mosquitto exited (${child.exitCode}): ${err}${this.log().slice(-500)}`);
      return new Promise<boolean>((resolve) => {
        const s = net.connect(this.port, '127.0.0.1', () => { s.destroy(); resolve(true); });
        s.on('error', () => resolve(false));
      });
    }, 30_000, 50);
  }

  log(): string {
    return fs.existsSync(this.logFile) ? fs.readFileSync(this.logFile, 'utf8') : '';
  }

  /** Waits until `count` clients hold a subscription to filter (from the broker's own log). */
  async waitSubscribed(filter: string, clients: string[]): Promise<void> {
    await waitFor(`${clients.join(', ')} subscribed to ${filter}`, () => {
      const log = this.log();
      return clients.every((c) => log.includes(`${c} 1 ${filter}`));
    }, 120_000, 100);
  }

  /** SIGTERM: Mosquitto writes its persistence file and exits. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    child.kill('SIGTERM');
    const guard = setTimeout(() => child.kill('SIGKILL'), 30_000);
    await this.exited;
    clearTimeout(guard);
    await sleep(50);
  }
}
