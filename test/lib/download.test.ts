import { strict as assert } from 'assert';
import { createHash, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import * as os from 'os';
import * as path from 'path';
import * as net from 'net';
import { AddressInfo } from 'net';
import { PublishedEntry } from '../../lib/weights/catalogue';
import {
  CONNECT_TIMEOUT_ENV, defaultCacheDir, downloadFile, DownloadProgress, ensureEntry, ensurePublished, fetchBytes, resolveTimeouts, TOTAL_TIMEOUT_ENV,
} from '../../lib/weights/download';
import { readSavedUrl } from '../../lib/weights/format';
import { loadGraphSegmenter } from '../../lib/weights/tfjs-graph';

const DATA = randomBytes(3 * 1024 * 1024 + 4321);
const SHA = createHash('sha256').update(DATA).digest('hex');
const SHARDS = [randomBytes(70000), randomBytes(12345)];

interface Logged {
  path: string;
  range?: string;
}

/** Streams in 64 KiB writes, as a real server does, so the client sees many chunks. */
function send(res: http.ServerResponse, buf: Buffer): void {
  let off = 0;
  const step = (): void => {
    while (off < buf.length) {
      const chunk = buf.subarray(off, off + 65536);
      off += chunk.length;
      if (!res.write(chunk)) {
        res.once('drain', step);
        return;
      }
    }
    res.end();
  };
  step();
}

function sendFile(req: http.IncomingMessage, res: http.ServerResponse, honourRange: boolean): void {
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  if (!honourRange || !m) {
    res.writeHead(200, { 'content-length': DATA.length });
    send(res, DATA);
    return;
  }
  const start = Number(m[1]);
  if (start >= DATA.length) {
    res.writeHead(416, { 'content-range': `bytes */${DATA.length}` }).end();
    return;
  }
  res.writeHead(206, { 'content-length': DATA.length - start, 'content-range': `bytes ${start}-${DATA.length - 1}/${DATA.length}` });
  send(res, DATA.subarray(start));
}

describe('lib/weights/download: the weights downloader', () => {
  let server: http.Server;
  let base: string;
  let dir: string;
  let log: Logged[] = [];
  let cutNext = false;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'deeplab-download-'));
    server = http.createServer((req, res) => {
      const u = new URL(req.url ?? '/', 'http://localhost');
      log.push({ path: u.pathname, range: req.headers.range });
      if (u.pathname === '/file') return sendFile(req, res, true);
      if (u.pathname === '/norange') return sendFile(req, res, false);
      if (u.pathname === '/cut') {
        if (!cutNext) return sendFile(req, res, true);
        cutNext = false;
        // Headers promise the whole file; the connection dies a third of the way in.
        res.writeHead(200, { 'content-length': DATA.length });
        res.write(DATA.subarray(0, 1024 * 1024), () => setTimeout(() => res.socket?.destroy(), 50));
        return;
      }
      if (u.pathname === '/redirect') return void res.writeHead(302, { location: '/file' }).end();
      if (u.pathname === '/redirect-abs') return void res.writeHead(301, { location: `${base}/redirect` }).end();
      if (u.pathname === '/stall') {
        res.writeHead(200, { 'content-length': DATA.length });
        res.flushHeaders();
        return;
      }
      if (u.pathname === '/silent') return;
      res.writeHead(404).end('not found');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    log = [];
  });
  const dest = (name: string) => path.join(dir, name);
  const requests = (p: string) => log.filter((l) => l.path === p);

  it('downloads with monotonic progress ending at 100 %, verified by sha256', async () => {
    const events: DownloadProgress[] = [];
    const r = await downloadFile(`${base}/file`, dest('a.bin'), { sha256: SHA, onProgress: (p) => events.push(p) });
    assert.deepEqual(fs.readFileSync(dest('a.bin')), DATA);
    assert.equal(r.sha256, SHA);
    assert.equal(r.bytes, DATA.length);
    assert.ok(!fs.existsSync(dest('a.bin.part')));
    assert.ok(events.length > 5, `${events.length} progress events`);
    for (let i = 1; i < events.length; i++) assert.ok(events[i].received >= events[i - 1].received, 'monotonic');
    const last = events[events.length - 1];
    assert.deepEqual([last.received, last.total, last.percent], [DATA.length, DATA.length, 100]);
    assert.ok(events.every((e) => e.bytesPerSec >= 0 && e.total === DATA.length));
  });

  it('resumes a part left by a broken connection with a Range request, byte-exact', async () => {
    cutNext = true;
    await assert.rejects(downloadFile(`${base}/cut`, dest('b.bin'), { sha256: SHA, retries: 0 }), (e: Error) => {
      assert.match(e.message, new RegExp(`${base}/cut`));
      assert.match(e.message, /ECONNRESET|closed after/);
      return true;
    });
    const have = fs.statSync(dest('b.bin.part')).size;
    assert.ok(have > 0 && have < DATA.length, `part holds ${have} bytes`);
    const events: DownloadProgress[] = [];
    const r = await downloadFile(`${base}/cut`, dest('b.bin'), { sha256: SHA, onProgress: (p) => events.push(p) });
    assert.equal(requests('/cut')[1].range, `bytes=${have}-`);
    assert.equal(events[0].received, have, 'progress starts at the resumed size');
    assert.equal(r.sha256, SHA);
    assert.deepEqual(fs.readFileSync(dest('b.bin')), DATA);
  });

  it('resumes by itself within one call when the connection breaks mid-body', async () => {
    cutNext = true;
    const events: DownloadProgress[] = [];
    await downloadFile(`${base}/cut`, dest('c.bin'), { sha256: SHA, onProgress: (p) => events.push(p) });
    const cut = requests('/cut');
    assert.equal(cut.length, 2);
    assert.equal(cut[0].range, undefined);
    assert.match(cut[1].range ?? '', /^bytes=\d+-$/);
    for (let i = 1; i < events.length; i++) assert.ok(events[i].received >= events[i - 1].received, 'monotonic across the retry');
    assert.deepEqual(fs.readFileSync(dest('c.bin')), DATA);
  });

  it('starts over when the server ignores Range', async () => {
    fs.writeFileSync(dest('d.bin.part'), Buffer.alloc(5000, 7)); // wrong bytes: must not survive
    await downloadFile(`${base}/norange`, dest('d.bin'), { sha256: SHA });
    assert.match(requests('/norange')[0].range ?? '', /^bytes=5000-$/);
    assert.deepEqual(fs.readFileSync(dest('d.bin')), DATA);
  });

  it('refuses a checksum mismatch and removes the partial file', async () => {
    await assert.rejects(downloadFile(`${base}/file`, dest('e.bin'), { sha256: '0'.repeat(64) }), /checksum mismatch: expected sha256 0{64}, got [0-9a-f]{64}/);
    assert.ok(!fs.existsSync(dest('e.bin.part')) && !fs.existsSync(dest('e.bin')));
    const wrongPrefix = (SHA[0] === '0' ? '1' : '0') + SHA.slice(1, 8);
    await assert.rejects(downloadFile(`${base}/file`, dest('e.bin'), { hashPrefix: wrongPrefix }), /checksum mismatch/);
    assert.ok(!fs.existsSync(dest('e.bin.part')));
    await downloadFile(`${base}/file`, dest('e.bin'), { hashPrefix: SHA.slice(0, 8), size: DATA.length });
    assert.deepEqual(fs.readFileSync(dest('e.bin')), DATA);
    await assert.rejects(downloadFile(`${base}/file`, dest('e2.bin'), { size: DATA.length + 1 }), /size mismatch/);
  });

  it('names the URL and ECONNREFUSED when nothing listens, with the hint', async () => {
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const url = `http://127.0.0.1:${port}/weights.pth`;
    await assert.rejects(downloadFile(url, dest('f.bin'), { hint: 'or place the file at /x/weights.pth' }), (e: Error & { code?: string }) => {
      assert.match(e.message, new RegExp(url.replace(/[.]/g, '\\.')));
      assert.match(e.message, /ECONNREFUSED/);
      assert.match(e.message, /place the file at \/x\/weights\.pth/);
      assert.equal(e.code, 'ECONNREFUSED');
      return true;
    });
  });

  it('shares one request between two concurrent calls for the same file', async () => {
    const a: number[] = [];
    const b: number[] = [];
    const p1 = downloadFile(`${base}/file`, dest('g.bin'), { sha256: SHA, onProgress: (p) => a.push(p.received) });
    const p2 = downloadFile(`${base}/file`, path.join(dir, '.', 'g.bin'), { sha256: SHA, onProgress: (p) => b.push(p.received) });
    assert.equal(p1, p2, 'one promise');
    const [r1, r2] = await Promise.all([p1, p2]);
    assert.equal(r1, r2);
    assert.equal(requests('/file').length, 1);
    assert.ok(a.length > 1 && b.length > 1, 'both got progress');
    assert.equal(b[b.length - 1], DATA.length);
    const r3 = await downloadFile(`${base}/file`, dest('g.bin'), { sha256: SHA });
    assert.notEqual(r3, r1, 'a later call downloads again');
  });

  it('follows redirects, relative and absolute', async () => {
    const r = await downloadFile(`${base}/redirect-abs`, dest('h.bin'), { sha256: SHA });
    assert.deepEqual(log.map((l) => l.path), ['/redirect-abs', '/redirect', '/file']);
    assert.equal(r.url, `${base}/file`);
    assert.deepEqual(fs.readFileSync(dest('h.bin')), DATA);
  });

  it('gives up on a server that sends headers and then stalls (idle timeout)', async () => {
    await assert.rejects(downloadFile(`${base}/stall`, dest('i.bin'), { idleTimeoutMs: 200 }), new RegExp(`${base}/stall failed: no data for 200 ms \\(idle timeout\\)`));
  });

  it('gives up on a server that never answers (connect timeout), and reports HTTP errors', async () => {
    await assert.rejects(downloadFile(`${base}/silent`, dest('j.bin'), { connectTimeoutMs: 200 }), /\/silent failed: no response within 200 ms/);
    await assert.rejects(downloadFile(`${base}/nothing`, dest('j.bin')), (e: Error & { status?: number }) => {
      assert.match(e.message, /\/nothing failed: HTTP 404 Not Found/);
      assert.equal(e.status, 404);
      return true;
    });
  });

  it('stops when its signal aborts', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    // Said as an abort on every Node (on 24 the aborted response fails with ECONNRESET first).
    await assert.rejects(downloadFile(`${base}/stall`, dest('k.bin'), { signal: ac.signal }), (e: Error & { code?: string }) => /\/stall failed: aborted/.test(e.message) && e.code === 'ABORT_ERR');
  });

  it('fetchBytes stops when its signal aborts, and says so', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    await assert.rejects(fetchBytes(`${base}/stall`, { signal: ac.signal }), (e: Error & { code?: string }) => /^GET .*\/stall failed: aborted$/.test(e.message) && e.code === 'ABORT_ERR');
  });
});

describe('lib/weights/download: ensurePublished and the cache', () => {
  let server: http.Server;
  let base: string;
  let dir: string;
  let hits: string[] = [];

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'deeplab-cache-'));
    server = http.createServer((req, res) => {
      const u = new URL(req.url ?? '/', 'http://localhost');
      hits.push(u.pathname + u.search);
      if (u.pathname === '/w/model-abc.pth') return void res.end(DATA);
      if (u.pathname === '/tfjs/model.json') {
        return void res.end(JSON.stringify({ format: 'graph-model', weightsManifest: [{ paths: ['group1-shard1of2.bin', 'group1-shard2of2.bin'], weights: [] }] }));
      }
      const shard = /^\/tfjs\/group1-shard(\d)of2\.bin$/.exec(u.pathname);
      if (shard) return void res.end(SHARDS[Number(shard[1]) - 1]);
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const entry = (over: Partial<PublishedEntry>): PublishedEntry => ({
    id: 'test/model', title: 't', fileName: 'model-abc.pth', format: 'pytorch', layout: 'torchvision',
    spec: { variant: 'v3', backbone: 'resnet50', classes: 2, outputStride: 16 }, dataset: 'd', classNames: ['a', 'b'],
    preprocessing: 'imagenet', score: { metric: 'mIoU', value: 1, on: 'x' }, license: 'MIT', source: 'https://example.org', ...over,
  });

  it('downloads once, then reuses the verified file (remembered in a .ok marker)', async () => {
    const e = entry({ url: `${base}/w/model-abc.pth`, sha256: SHA });
    const file = await ensureEntry(e, dir);
    assert.equal(file, path.join(dir, 'model-abc.pth'));
    assert.deepEqual(fs.readFileSync(file), DATA);
    assert.equal(JSON.parse(fs.readFileSync(`${file}.ok`, 'utf8')).sha256, SHA);
    assert.equal(await ensureEntry(e, dir), file);
    assert.deepEqual(hits, ['/w/model-abc.pth'], 'the second call made no request');
    // A file changed behind the marker's back is checked again, found wrong, and fetched anew.
    const bad = Buffer.from(DATA);
    bad[10] ^= 1;
    fs.writeFileSync(file, bad);
    fs.utimesSync(file, new Date(), new Date(Date.now() + 5000));
    await ensureEntry(e, dir);
    assert.equal(hits.length, 2);
    assert.deepEqual(fs.readFileSync(file), DATA);
  });

  it('names the page and the exact path for a manual entry, and takes the placed file', async () => {
    const e = entry({ id: 'test/manual', fileName: 'manual.pth', manual: { page: 'https://example.org/readme', download: 'https://drive.example/abc', instructions: 'Click through.' }, unverified: 'none' });
    const where = path.join(dir, 'manual.pth');
    await assert.rejects(ensureEntry(e, dir), (err: Error) => {
      assert.ok(err.message.includes('https://drive.example/abc') && err.message.includes('https://example.org/readme'), err.message);
      assert.ok(err.message.includes(`place the file at ${where}`), err.message);
      return true;
    });
    fs.writeFileSync(where, DATA);
    assert.equal(await ensureEntry(e, dir), where);
  });

  it('fetches a TF.js graph model with its weight shards (keeping the query)', async () => {
    hits = [];
    const e = entry({ id: 'test/tfjs', format: 'tfjs-graph', layout: 'tfjs-deeplab', url: `${base}/tfjs/model.json?v=1`, fileName: 'tfjs-test/model.json', unverified: 'none' });
    const file = await ensureEntry(e, dir);
    assert.equal(file, path.join(dir, 'tfjs-test', 'model.json'));
    assert.deepEqual(fs.readFileSync(path.join(dir, 'tfjs-test', 'group1-shard2of2.bin')), SHARDS[1]);
    assert.deepEqual(hits, ['/tfjs/model.json?v=1', '/tfjs/group1-shard1of2.bin?v=1', '/tfjs/group1-shard2of2.bin?v=1']);
    await ensureEntry(e, dir);
    assert.equal(hits.length, 3, 'cached');
  });

  it('ensurePublished refuses an unknown id; defaultCacheDir follows DEEPLAB_WEIGHTS_CACHE', async () => {
    await assert.rejects(ensurePublished('torchvision/deeplabv3_resnet10_coco', dir), /did you mean/);
    await assert.rejects(ensurePublished('jfzhang95/deeplabv3plus_resnet101_voc', dir), /place the file at .*deeplab-resnet\.pth\.tar/);
    const saved = process.env.DEEPLAB_WEIGHTS_CACHE;
    try {
      delete process.env.DEEPLAB_WEIGHTS_CACHE;
      assert.equal(defaultCacheDir('/u'), path.join('/u', 'deeplab-weights'));
      assert.equal(defaultCacheDir(), path.join(os.homedir(), '.node-red', 'deeplab-weights'));
      process.env.DEEPLAB_WEIGHTS_CACHE = '/tmp/elsewhere';
      assert.equal(defaultCacheDir('/u'), '/tmp/elsewhere');
    } finally {
      if (saved === undefined) delete process.env.DEEPLAB_WEIGHTS_CACHE;
      else process.env.DEEPLAB_WEIGHTS_CACHE = saved;
    }
  });
});

describe('lib/weights: every URL load names the URL and the cause, with connect and total timeouts', () => {
  let silent: net.Server;
  let trickle: http.Server;
  let silentBase: string;
  let trickleBase: string;
  let refusedBase: string;
  const sockets: net.Socket[] = [];
  const timers: NodeJS.Timeout[] = [];
  let dir: string;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'deeplab-timeouts-'));
    // Takes the connection, reads the request, never answers.
    silent = net.createServer((s) => {
      sockets.push(s);
      s.on('data', () => undefined);
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    silentBase = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    // Answers at once and then sends one byte every 20 ms, for ever: only a total timeout ends it.
    trickle = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      timers.push(setInterval(() => res.write('x'), 20));
    });
    await new Promise<void>((r) => trickle.listen(0, '127.0.0.1', r));
    trickleBase = `http://127.0.0.1:${(trickle.address() as AddressInfo).port}`;
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    refusedBase = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise<void>((r) => closed.close(() => r()));
  });
  after(() => {
    for (const t of timers) clearInterval(t);
    for (const s of sockets) s.destroy();
    silent.close();
    trickle.closeAllConnections();
    trickle.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Runs `fn` with environment variables set, restoring them after. */
  async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
    const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
    Object.assign(process.env, vars);
    try {
      return await fn();
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  }
  const esc = (s: string) => s.replace(/[.?*+^$()[\]\\/]/g, '\\$&');

  it('a silent server (takes the connection, never answers): saved-model URL, TF.js graph URL and download fail after the connect timeout, naming the URL', async () => {
    await withEnv({ [CONNECT_TIMEOUT_ENV]: '0.2' }, async () => {
      const cases: [string, () => Promise<unknown>][] = [
        [`${silentBase}/model/deeplab.json`, () => readSavedUrl(`${silentBase}/model/`)],
        [`${silentBase}/graph/model.json`, () => loadGraphSegmenter(`${silentBase}/graph/`)],
        [`${silentBase}/w.pth`, () => downloadFile(`${silentBase}/w.pth`, path.join(dir, 'w.pth'))],
      ];
      for (const [url, load] of cases) {
        await assert.rejects(load(), (e: Error & { code?: string; url?: string }) => {
          assert.match(e.message, new RegExp(`${esc(url)} failed: no response within 200 ms \\(connect timeout: the server took the connection and sent nothing`));
          assert.match(e.message, /DEEPLAB_CONNECT_TIMEOUT/);
          assert.equal(e.code, 'ETIMEDOUT');
          assert.equal(e.url, url);
          return true;
        });
      }
    });
    // The option wins over the environment.
    await assert.rejects(fetchBytes(`${silentBase}/x`, { connectTimeoutMs: 150 }), /\/x failed: no response within 150 ms/);
  });

  it('nothing listening: the URL and ECONNREFUSED, not "fetch failed"', async () => {
    for (const load of [() => readSavedUrl(`${refusedBase}/m/`), () => loadGraphSegmenter(`${refusedBase}/g/model.json`)]) {
      await assert.rejects(load(), (e: Error) => {
        assert.match(e.message, new RegExp(`^GET ${esc(refusedBase)}/(m/deeplab|g/model)\\.json failed: connection refused \\(ECONNREFUSED\\)`));
        assert.doesNotMatch(e.message, /fetch failed/);
        return true;
      });
    }
  });

  it('a server that trickles for ever: the total timeout (option or DEEPLAB_DOWNLOAD_TIMEOUT) ends it, naming the URL', async () => {
    await assert.rejects(fetchBytes(`${trickleBase}/a`, { totalTimeoutMs: 300 }), new RegExp(`GET ${esc(trickleBase)}/a failed: not finished within 300 ms \\(total timeout`));
    await assert.rejects(downloadFile(`${trickleBase}/b`, path.join(dir, 'b.bin'), { totalTimeoutMs: 300 }), new RegExp(`download of ${esc(trickleBase)}/b failed: not finished within 300 ms \\(total timeout; DEEPLAB_DOWNLOAD_TIMEOUT`));
    await withEnv({ [TOTAL_TIMEOUT_ENV]: '0.25' }, async () => {
      await assert.rejects(readSavedUrl(`${trickleBase}/c/`), new RegExp(`${esc(trickleBase)}/c/deeplab\\.json failed: not finished within 250 ms \\(total timeout`));
      await assert.rejects(downloadFile(`${trickleBase}/d`, path.join(dir, 'd.bin')), /\/d failed: not finished within 250 ms/);
    });
  });

  it('a bad timeout in the environment is a clear error; the defaults are 15 s to connect and no total limit', async () => {
    await withEnv({ [CONNECT_TIMEOUT_ENV]: 'soon' }, async () => {
      await assert.rejects(downloadFile(`${silentBase}/e`, path.join(dir, 'e.bin')), /DEEPLAB_CONNECT_TIMEOUT must be a number of seconds >= 0, got "soon"/);
      await assert.rejects(fetchBytes(`${silentBase}/e`), /DEEPLAB_CONNECT_TIMEOUT must be a number of seconds/);
    });
    await withEnv({ [CONNECT_TIMEOUT_ENV]: '', [TOTAL_TIMEOUT_ENV]: '' }, async () => {
      assert.deepEqual(resolveTimeouts(), { connectTimeoutMs: 15000, idleTimeoutMs: 30000, totalTimeoutMs: 0 });
    });
  });
});
