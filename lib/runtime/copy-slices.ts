/**
 * Copies of big arrays made a slice at a time, yielding to the event loop between slices.
 *
 * Data on wires is shared by every clone of a message (Node-RED's clone keeps Buffers' memory), so a
 * stage that hands an array to a compute worker copies it first and moves the copy. One copy of a
 * 252 MB score map in one go stalled Node-RED's loop for 0.8 s on a loaded machine (fresh pages
 * are faulted in as they are written); in slices of a few MB the editor, the Admin API and other
 * flows run in between.
 */

/** Bytes copied per turn of the event loop. */
export const COPY_SLICE_BYTES = 4 << 20;

type Copyable = Uint8Array | Float32Array;

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function copyInto<T extends Copyable>(out: T, src: ArrayLike<number> & { subarray(a: number, b: number): ArrayLike<number> }, sliceBytes: number): Promise<T> {
  const per = Math.max(1, Math.floor(sliceBytes / out.BYTES_PER_ELEMENT));
  for (let i = 0; i < out.length; i += per) {
    if (i > 0) await nextTurn();
    out.set(src.subarray(i, Math.min(out.length, i + per)), i);
  }
  return out;
}

/**
 * A copy of `src` in its own ArrayBuffer (transferable), made in slices of `sliceBytes`: at once
 * when it fits one slice. `src` may be a typed array of any realm; it must not change meanwhile
 * (data on wires is read-only by convention).
 */
export function copyFloats(src: Float32Array, sliceBytes = COPY_SLICE_BYTES): Promise<Float32Array> {
  return copyInto(new Float32Array(src.length), src, sliceBytes);
}

/** copyFloats for bytes (a Buffer, a Uint8Array): the copy is a plain Uint8Array with its own buffer. */
export function copyBytes(src: Uint8Array, sliceBytes = COPY_SLICE_BYTES): Promise<Uint8Array> {
  return copyInto(new Uint8Array(src.length), src, sliceBytes);
}
