/**
 * Where a checkpoint's bytes come from: a file read at positions (a 500 MB checkpoint is never read
 * whole) or bytes already in memory. Both hand out exactly the ranges asked for.
 */
import * as fs from 'fs';

export type Source =
  | { kind: 'file'; size: number; path: string; read(pos: number, len: number): Promise<Uint8Array>; close(): Promise<void> }
  | { kind: 'memory'; size: number; bytes: Buffer; read(pos: number, len: number): Promise<Uint8Array>; close(): Promise<void> };

export class TruncatedError extends Error {}

export async function fileSource(file: string): Promise<Source> {
  const handle = await fs.promises.open(file, 'r');
  try {
    const { size } = await handle.stat();
    return {
      kind: 'file',
      size,
      path: file,
      async read(pos: number, len: number): Promise<Uint8Array> {
        if (pos + len > size) throw new TruncatedError(`${len} bytes at byte ${pos} run past the end of the file (${size} bytes)`);
        // A fresh Uint8Array (not a pooled Buffer) starts at offset 0, so typed views of it are aligned.
        const out = new Uint8Array(len);
        let done = 0;
        while (done < len) {
          const { bytesRead } = await handle.read(out, done, len - done, pos + done);
          if (bytesRead === 0) throw new TruncatedError(`the file ended at byte ${pos + done} while ${len} bytes at byte ${pos} were read`);
          done += bytesRead;
        }
        return out;
      },
      close: () => handle.close(),
    };
  } catch (err) {
    await handle.close();
    throw err;
  }
}

export function memorySource(data: Uint8Array): Source {
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return {
    kind: 'memory',
    size: bytes.length,
    bytes,
    read(pos: number, len: number): Promise<Uint8Array> {
      if (pos + len > bytes.length) return Promise.reject(new TruncatedError(`${len} bytes at byte ${pos} run past the end of the data (${bytes.length} bytes)`));
      return Promise.resolve(bytes.subarray(pos, pos + len));
    },
    close: () => Promise.resolve(),
  };
}
