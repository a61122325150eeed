/**
 * torch.save's zip container (torch >= 1.6): `<folder>/data.pkl` is the pickle, `<folder>/data/<key>`
 * the raw bytes of each storage, `<folder>/byteorder` (torch >= 2.1) says how they were written.
 * The folder is named after the file it was first saved as, so it is found, not assumed. yauzl reads
 * the central directory and then only the records asked for, straight from the file descriptor.
 */
import { Readable } from 'stream';
import * as yauzl from 'yauzl';
import { StorageTable } from './globals';
import { unpickle } from './pickle';
import { Source } from './source';

/** A checkpoint container opened and its pickle run; storages are read later, only those needed. */
export interface Container {
  format: 'zip' | 'legacy';
  value: unknown;
  table: StorageTable;
  /** How many storages the file holds. */
  storageCount: number;
  /** Reads the storages named by `keys`, one at a time, handing each one's bytes to `use`; returns the bytes read. */
  readStorages(keys: Set<string>, use: (key: string, bytes: Uint8Array) => void): Promise<number>;
}

/** Deflate cannot expand more than this, so a larger claimed size is a lie about the data. */
const MAX_DEFLATE_RATIO = 1032;
const MAX_ENTRIES = 1 << 20;

async function openZip(src: Source): Promise<yauzl.ZipFile> {
  const options: yauzl.Options = { autoClose: false, lazyEntries: true, decodeStrings: true, validateEntrySizes: true, strictFileNames: false };
  try {
    // yauzl opens its own descriptor (closing a zip file closes the descriptor it read, so it cannot borrow ours).
    const zip = src.kind === 'file' ? await yauzl.openPromise(src.path, options) : await yauzl.fromBufferPromise(src.bytes, options);
    // A failure to close the descriptor surfaces as an 'error' event; with nobody listening it would crash the process.
    zip.on('error', () => undefined);
    return zip;
  } catch (err) {
    const msg = (err as Error).message;
    if (/end of central directory record signature not found/i.test(msg)) {
      throw new Error(`truncated zip (no end of central directory record: the file was cut short or is not a whole zip archive)`);
    }
    throw new Error(`damaged zip (${msg})`);
  }
}

async function readEntry(zip: yauzl.ZipFile, entry: yauzl.Entry, fileSize: number): Promise<Uint8Array> {
  const size = entry.uncompressedSize;
  const limit = entry.compressionMethod === 0 ? fileSize : entry.compressedSize * MAX_DEFLATE_RATIO;
  if (size > limit) throw new Error(`damaged zip (record ${entry.fileName} claims ${size} bytes, more than the file can hold)`);
  let stream: Readable;
  try {
    stream = await zip.openReadStreamPromise(entry);
  } catch (err) {
    throw new Error(`damaged zip (record ${entry.fileName}: ${(err as Error).message})`);
  }
  const out = new Uint8Array(size);
  let at = 0;
  try {
    for await (const chunk of stream) {
      const b = chunk as Buffer;
      if (at + b.length > size) throw new Error(`record ${entry.fileName} holds more than the ${size} bytes it claims`);
      out.set(b, at);
      at += b.length;
    }
  } catch (err) {
    stream.destroy();
    throw new Error(`damaged zip (record ${entry.fileName}: ${(err as Error).message})`);
  }
  if (at !== size) throw new Error(`truncated zip (record ${entry.fileName} holds ${at} of its ${size} bytes)`);
  return out;
}

/** Opens the zip container; `close` must be called when done (it leaves the source open). */
export async function openZipContainer(src: Source): Promise<Container & { close(): void }> {
  const zip = await openZip(src);
  try {
    const entries = new Map<string, yauzl.Entry>();
    try {
      for await (const entry of zip.eachEntry()) {
        if (entries.size >= MAX_ENTRIES) throw new Error(`more than ${MAX_ENTRIES} records`);
        entries.set(entry.fileName, entry);
      }
    } catch (err) {
      throw new Error(`damaged zip (its directory: ${(err as Error).message})`);
    }
    const pkl = [...entries.keys()].find((n) => /^[^/]+\/data\.pkl$/.test(n)) ?? (entries.has('data.pkl') ? 'data.pkl' : undefined);
    if (!pkl) {
      const names = [...entries.keys()].slice(0, 5).join(', ');
      throw new Error(`not a PyTorch checkpoint (a zip archive without <folder>/data.pkl; it holds ${names || 'nothing'})`);
    }
    const prefix = pkl.slice(0, -'data.pkl'.length);
    if (entries.has(`${prefix}constants.pkl`) || entries.has(`${prefix}code/`)) {
      throw new Error('a TorchScript archive (torch.jit.save), not a torch.save checkpoint: save the model\'s state_dict() with torch.save');
    }
    const order = entries.get(`${prefix}byteorder`);
    if (order) {
      const text = new TextDecoder().decode(await readEntry(zip, order, src.size)).trim();
      if (text !== 'little') throw new Error(`the checkpoint was written ${text}-endian (its byteorder record); only little-endian checkpoints are read`);
    }
    const table = new StorageTable();
    const { value } = unpickle(await readEntry(zip, entries.get(pkl) as yauzl.Entry, src.size), 0, table);
    const storagePrefix = `${prefix}data/`;
    let storageCount = 0;
    for (const name of entries.keys()) if (name.startsWith(storagePrefix) && name.length > storagePrefix.length) storageCount++;

    return {
      format: 'zip',
      value,
      table,
      storageCount,
      close: () => zip.close(),
      async readStorages(keys, use) {
        let total = 0;
        for (const key of [...keys].sort()) {
          const name = `${storagePrefix}${key}`;
          const entry = entries.get(name);
          if (!entry) throw new Error(`the pickle refers to storage ${key}, but the archive has no record ${name}`);
          const need = table.declaredBytes(key);
          if (entry.uncompressedSize < need) {
            const root = table.roots.get(key);
            throw new Error(`storage ${name} holds ${entry.uncompressedSize} bytes, but the pickle says it holds ${root?.numel} ${root?.dtype} elements (${need} bytes)`);
          }
          const bytes = await readEntry(zip, entry, src.size);
          total += bytes.length;
          use(key, bytes);
        }
        return total;
      },
    };
  } catch (err) {
    zip.close();
    throw err;
  }
}
