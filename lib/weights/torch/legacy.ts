/**
 * torch's legacy format (torch 0.4 to 1.5, and later with _use_new_zipfile_serialization=False):
 * pickles in a row (magic number, protocol version, sys_info, the object, the sorted list of storage
 * keys), then each storage in the list's order as an 8-byte little-endian element count and its raw
 * bytes. The pickles come first and are small, so they are read through a window that grows until
 * they fit; storages are then visited by their headers, and only the wanted ones read.
 */
import { ITEM_SIZE } from './dtypes';
import { StorageTable } from './globals';
import { describe, PickleEnv, PickleError, PickleTruncated, PyDict, unpickle } from './pickle';
import { Source, TruncatedError } from './source';
import { Container } from './zip';

const MAGIC_NUMBER = 0x1950a86a20f9469cfc6cn;
const PROTOCOL_VERSION = 1001;
const FIRST_WINDOW = 1 << 20;

/** The header pickles name no globals and no storages. */
const PLAIN: PickleEnv = {
  resolveGlobal: (module, name) => {
    throw new PickleError(`pickle refers to global "${module}.${name}", which is not allowed in a weights file (only tensors and containers are read)`);
  },
  persistentLoad: () => {
    throw new PickleError('a persistent id in a header pickle');
  },
};

/** Whether the bytes start with torch's legacy magic number (a pickled int). */
export function hasLegacyMagic(head: Uint8Array): boolean {
  try {
    return unpickle(head, 0, PLAIN).value === MAGIC_NUMBER;
  } catch {
    return false;
  }
}

interface Pickles {
  value: unknown;
  table: StorageTable;
  keys: string[];
  end: number;
}

function parsePickles(bytes: Uint8Array): Pickles {
  let r = unpickle(bytes, 0, PLAIN);
  if (r.value !== MAGIC_NUMBER) throw new Error('not a PyTorch checkpoint (a pickle without torch\'s magic number)');
  r = unpickle(bytes, r.end, PLAIN);
  if (r.value !== PROTOCOL_VERSION) throw new Error(`legacy checkpoint of protocol version ${describe(r.value)} (this reader knows ${PROTOCOL_VERSION})`);
  r = unpickle(bytes, r.end, PLAIN);
  const sysInfo = r.value;
  if (sysInfo instanceof PyDict && sysInfo.get('little_endian') === false) {
    throw new Error('the checkpoint was written on a big-endian machine; only little-endian checkpoints are read');
  }
  const table = new StorageTable();
  const main = unpickle(bytes, r.end, table);
  r = unpickle(bytes, main.end, PLAIN);
  if (!Array.isArray(r.value) || !r.value.every((k) => typeof k === 'string')) {
    throw new Error(`the legacy checkpoint's storage key list is a ${describe(r.value)}`);
  }
  return { value: main.value, table, keys: r.value as string[], end: r.end };
}

export async function openLegacyContainer(src: Source): Promise<Container> {
  let window = Math.min(src.size, FIRST_WINDOW);
  let pickles: Pickles;
  for (;;) {
    try {
      pickles = parsePickles(await src.read(0, window));
      break;
    } catch (err) {
      if (!(err instanceof PickleTruncated)) throw err;
      if (window >= src.size) throw new Error(`truncated legacy checkpoint (${err.message})`);
      window = Math.min(src.size, window * 4);
    }
  }
  const { value, table, keys, end } = pickles;
  const listed = new Set(keys);
  for (const key of table.roots.keys()) {
    if (!listed.has(key)) throw new Error(`the pickle refers to storage ${key}, which the key list does not hold`);
  }

  return {
    format: 'legacy',
    value,
    table,
    storageCount: keys.length,
    async readStorages(wanted, use) {
      let pos = end;
      let total = 0;
      let left = wanted.size;
      for (const key of keys) {
        if (left === 0) break;
        const root = table.roots.get(key);
        if (!root) throw new Error(`storage ${key} of the key list is not referred to by the pickle`);
        let header: Uint8Array;
        try {
          header = await src.read(pos, 8);
        } catch (err) {
          if (err instanceof TruncatedError) throw new Error(`truncated legacy checkpoint (the file ends before storage ${key}, at byte ${src.size})`);
          throw err;
        }
        const view = new DataView(header.buffer, header.byteOffset, 8);
        const count = view.getUint32(4, true) * 4294967296 + view.getUint32(0, true);
        const bytes = count * ITEM_SIZE[root.dtype];
        if (pos + 8 + bytes > src.size) {
          throw new Error(`truncated legacy checkpoint (storage ${key} says it holds ${count} ${root.dtype} elements, ${bytes} bytes from byte ${pos + 8}, but the file ends at byte ${src.size})`);
        }
        if (count < root.numel) throw new Error(`storage ${key} holds ${count} elements, but the pickle says it holds ${root.numel}`);
        if (wanted.has(key)) {
          use(key, await src.read(pos + 8, bytes));
          total += bytes;
          left--;
        }
        pos += 8 + bytes;
      }
      if (left > 0) throw new Error(`the checkpoint lacks ${left} of the storages its tensors need`);
      return total;
    },
  };
}
