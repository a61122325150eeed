/**
 * The CRF's working memory for the WebAssembly kernels: one WebAssembly.Memory per thread, kept
 * from run to run and laid out by a bump allocator.
 */
import { MAX_PAGES } from '../runtime/wasm-emitter';

let arenaLimit = MAX_PAGES * 65536;
/** Caps the bytes of one arena (tests use it to exercise the fallback); returns the previous cap. */
export function setArenaLimit(bytes: number): number {
  const prev = arenaLimit;
  arenaLimit = Math.min(bytes, MAX_PAGES * 65536);
  return prev;
}

/**
 * Bump allocator over one WebAssembly.Memory; offsets are 16-byte aligned. The memory is kept
 * and reused from run to run (acquire), growing when an image needs more: a helper thread that
 * was handed the memory holds on to it until its own garbage collection, which an idle thread
 * may never run, so a fresh memory per run would pile up. releaseArena() lets it go.
 */
export class Arena {
  readonly memory: WebAssembly.Memory;
  private top = 16; // address 0..15 unused

  private constructor(memory: WebAssembly.Memory) {
    this.memory = memory;
  }

  /** This thread's arena, reset and holding at least `bytes`. */
  static acquire(bytes: number): Arena {
    const pages = Math.ceil((bytes + 64) / 65536);
    if (pages * 65536 > arenaLimit) {
      throw new Error(`the CRF needs ${(bytes / 2 ** 30).toFixed(2)} GiB of working memory, above the ${(arenaLimit / 2 ** 30).toFixed(2)} GiB one WebAssembly memory holds`);
    }
    let a = current;
    if (a) {
      const have = a.memory.buffer.byteLength / 65536;
      if (have < pages) {
        try {
          a.memory.grow(pages - have);
        } catch {
          a = undefined; // a memory made at its exact size cannot grow: make another
        }
      }
    }
    if (!a) {
      let memory: WebAssembly.Memory;
      try {
        memory = new WebAssembly.Memory({ initial: pages, maximum: MAX_PAGES, shared: true });
      } catch {
        // Where 4 GiB of address space cannot be reserved, a memory of just this size.
        memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
      }
      a = new Arena(memory);
    }
    a.top = 16;
    current = a;
    return a;
  }

  /** Where the next allocation starts. */
  get next(): number {
    return this.top;
  }

  /** Grows the memory (when it can) to hold addresses below `end`; throws past the limit. */
  reserve(end: number): void {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return;
    const pages = Math.ceil(end / 65536);
    if (pages * 65536 > arenaLimit) {
      throw new Error(`the CRF needs ${(end / 2 ** 30).toFixed(2)} GiB of working memory, above the ${(arenaLimit / 2 ** 30).toFixed(2)} GiB one WebAssembly memory holds`);
    }
    this.memory.grow(pages - have / 65536);
  }

  alloc(bytes: number): number {
    const at = this.top;
    this.top = (this.top + bytes + 15) & ~15;
    if (this.top > this.memory.buffer.byteLength) throw new Error('CRF arena overflow');
    return at;
  }

  /** Bytes a set of allocations will take (for sizing the arena first). */
  static size(list: number[]): number {
    return 16 + list.reduce((a, b) => a + ((b + 15) & ~15), 0);
  }

  f32(at: number, length: number): Float32Array {
    return new Float32Array(this.memory.buffer, at, length);
  }

  i32(at: number, length: number): Int32Array {
    return new Int32Array(this.memory.buffer, at, length);
  }
}

let current: Arena | undefined;

/** Drops this thread's arena (its memory is freed once no thread refers to it). */
export function releaseArena(): void {
  current = undefined;
}
