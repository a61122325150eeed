/**
 * A pickle virtual machine that executes nothing. Python's unpickler imports and calls whatever a
 * pickle names, which is why loading an untrusted checkpoint with torch.load runs code. Here every
 * GLOBAL goes through the caller's allow-list of pure data constructors written in TypeScript, so a
 * pickle can only build plain values: None, bools, numbers, strings, bytes, lists, tuples (frozen
 * arrays), dicts (PyDict) and sets, plus the objects the allow-list makes.
 * Opcodes follow CPython's Lib/pickle.py (protocols 0 to 5); out-of-band buffers and the extension
 * registry are refused. Stack, mark depth, memo and integer sizes are bounded.
 */

/** A Python dict (also OrderedDict); `attrs` keeps the instance state a BUILD gave it (a state dict's _metadata). */
export class PyDict extends Map<unknown, unknown> {
  attrs?: unknown;
}

/** A Python set or frozenset (only carried, never looked into). */
export class PySet {
  constructor(readonly items: unknown[] = []) {}
}

/** An allow-listed global: a constructor of plain data, called by REDUCE, NEWOBJ, INST and OBJ. */
export interface PyGlobal {
  readonly qualname: string;
  call(args: readonly unknown[]): unknown;
}

/** What BUILD may update: objects of the allow-list that accept a state. */
export interface PyStateful {
  setState(state: unknown): void;
}

export interface PickleEnv {
  /** The allow-listed constructor for module.name; throws for anything else. */
  resolveGlobal(module: string, name: string): PyGlobal;
  /** Torch's storages are persistent ids: the caller turns the id into a storage reference. */
  persistentLoad(pid: unknown): unknown;
}

export class PickleError extends Error {}
/** The pickle runs past the end of the bytes given (a truncated file, or a window too small). */
export class PickleTruncated extends PickleError {}

export function isTuple(v: unknown): v is readonly unknown[] {
  return Array.isArray(v) && Object.isFrozen(v);
}

const tuple = (items: unknown[]): readonly unknown[] => Object.freeze(items);
const MAX_STACK = 1 << 20;
const MAX_MARKS = 1 << 16;
const MAX_MEMO = 1 << 22;
const MAX_LONG_BYTES = 256;
const utf8 = new TextDecoder('utf-8');
const latin1 = new TextDecoder('latin1');

/** Two's-complement little-endian integer of any length (LONG1, LONG4): a number when exact, else a bigint. */
function decodeLong(b: Uint8Array): number | bigint {
  if (b.length === 0) return 0;
  if (b.length > MAX_LONG_BYTES) throw new PickleError(`an integer of ${b.length} bytes (a weights file has none beyond ${MAX_LONG_BYTES})`);
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
  if (b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** Python 2 text ints ("I01\n" is True in protocol 0) and longs ("L5L\n"). */
function decodeTextInt(s: string, long: boolean): number | bigint | boolean {
  if (!long && s === '01') return true;
  if (!long && s === '00') return false;
  const t = s.endsWith('L') ? s.slice(0, -1) : s;
  if (!/^[+-]?\d+$/.test(t)) throw new PickleError(`bad integer literal "${s}"`);
  const v = BigInt(t);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** The repr of a str in protocol 0 (STRING): quoted, with backslash escapes. */
function decodeQuoted(s: string): string {
  const q = s[0];
  if ((q !== "'" && q !== '"') || s[s.length - 1] !== q) throw new PickleError('STRING opcode argument is not quoted');
  return s.slice(1, -1).replace(/\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|.)/g, (_m, e: string) => {
    if (e[0] === 'x' || e[0] === 'u') return String.fromCharCode(parseInt(e.slice(1), 16));
    return ({ n: '\n', r: '\r', t: '\t', '\\': '\\', "'": "'", '"': '"' } as Record<string, string>)[e] ?? `\\${e}`;
  });
}

/** Protocol 0's UNICODE argument (raw-unicode-escape: only \\u and \\U are escapes). */
function decodeRawUnicode(s: string): string {
  return s.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_m, a?: string, b?: string) => String.fromCodePoint(parseInt(a ?? b ?? '0', 16)));
}

/**
 * Runs one pickle starting at `pos` and returns its value and the position after its STOP (torch's
 * legacy files are several pickles in a row). Throws PickleTruncated when the bytes end first.
 */
export function unpickle(data: Uint8Array, pos: number, env: PickleEnv): { value: unknown; end: number } {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let stack: unknown[] = [];
  const marks: unknown[][] = [];
  let depth = 0; // items held in all stacks together
  const memo = new Map<number, unknown>();
  let p = pos;

  const need = (n: number): void => {
    if (n < 0) throw new PickleError(`a negative length at byte ${p}`);
    if (p + n > data.length) throw new PickleTruncated(`the pickle ends early (it needs ${n} more bytes at byte ${p} of ${data.length})`);
  };
  const take = (n: number): Uint8Array => {
    need(n);
    p += n;
    return data.subarray(p - n, p);
  };
  const u8 = (): number => take(1)[0];
  const u16 = (): number => { need(2); p += 2; return view.getUint16(p - 2, true); };
  const u32 = (): number => { need(4); p += 4; return view.getUint32(p - 4, true); };
  const u64 = (): number => {
    need(8);
    const hi = view.getUint32(p + 4, true);
    const lo = view.getUint32(p, true);
    p += 8;
    // Any length past 2^53 is longer than a file could be; need() refuses it.
    return hi >= 0x200000 ? Number.MAX_SAFE_INTEGER : hi * 4294967296 + lo;
  };
  const line = (): string => {
    const nl = data.indexOf(0x0a, p);
    if (nl < 0) throw new PickleTruncated(`the pickle ends early (a text argument at byte ${p} has no end of line)`);
    const s = latin1.decode(data.subarray(p, nl));
    p = nl + 1;
    return s;
  };
  const push = (v: unknown): void => {
    if (++depth > MAX_STACK) throw new PickleError(`the pickle's stack grows past ${MAX_STACK} items`);
    stack.push(v);
  };
  const pop = (): unknown => {
    if (stack.length === 0) throw new PickleError(`stack underflow at byte ${p - 1}`);
    depth--;
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) throw new PickleError(`stack underflow at byte ${p - 1}`);
    return stack[stack.length - 1];
  };
  const pushMark = (): void => {
    if (marks.length >= MAX_MARKS) throw new PickleError(`the pickle nests deeper than ${MAX_MARKS} levels`);
    marks.push(stack);
    stack = [];
  };
  /** The items pushed since the last MARK, which is removed. */
  const popMark = (): unknown[] => {
    const items = stack;
    const prev = marks.pop();
    if (!prev) throw new PickleError(`no MARK on the stack at byte ${p - 1}`);
    stack = prev;
    depth -= items.length;
    return items;
  };
  const memoPut = (i: number, v: unknown): void => {
    if (!memo.has(i) && memo.size >= MAX_MEMO) throw new PickleError(`the pickle's memo grows past ${MAX_MEMO} entries`);
    memo.set(i, v);
  };
  const memoGet = (i: number): unknown => {
    if (!memo.has(i)) throw new PickleError(`memo entry ${i} read before it was written`);
    return memo.get(i);
  };
  const callable = (v: unknown): PyGlobal => {
    if (typeof v === 'object' && v !== null && 'call' in v && 'qualname' in v) return v as PyGlobal;
    throw new PickleError(`the pickle calls something that is not a global (${describe(v)})`);
  };
  const argsOf = (v: unknown): readonly unknown[] => {
    if (Array.isArray(v)) return v;
    throw new PickleError(`the pickle calls a global with arguments that are not a tuple (${describe(v)})`);
  };
  const setItems = (d: unknown, items: unknown[]): void => {
    if (!(d instanceof PyDict)) throw new PickleError(`SETITEM(S) on a ${describe(d)}`);
    if (items.length % 2) throw new PickleError('SETITEMS with an odd number of items');
    for (let i = 0; i < items.length; i += 2) d.set(items[i], items[i + 1]);
  };
  const appendItems = (l: unknown, items: unknown[]): void => {
    if (!Array.isArray(l) || Object.isFrozen(l)) throw new PickleError(`APPEND(S) on a ${describe(l)}`);
    for (const it of items) l.push(it);
  };
  const build = (obj: unknown, state: unknown): void => {
    if (obj instanceof PyDict) obj.attrs = state; // OrderedDict's instance dict (torch keeps _metadata there)
    else if (typeof obj === 'object' && obj !== null && 'setState' in obj) (obj as PyStateful).setState(state);
    else throw new PickleError(`BUILD on a ${describe(obj)}`);
  };
  const stackGlobal = (): PyGlobal => {
    const name = pop();
    const module = pop();
    if (typeof module !== 'string' || typeof name !== 'string') throw new PickleError('STACK_GLOBAL with a module or name that is not a string');
    return env.resolveGlobal(module, name);
  };

  for (;;) {
    const at = p;
    const op = u8();
    switch (op) {
      case 0x80: { // PROTO
        const v = u8();
        if (v > 5) throw new PickleError(`pickle protocol ${v} (this reader knows 0 to 5)`);
        break;
      }
      case 0x95: u64(); break; // FRAME: a length hint only; the bytes follow inline
      case 0x2e: { // STOP
        const value = pop();
        return { value, end: p };
      }
      case 0x28: pushMark(); break; // MARK
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: push(top()); break; // DUP
      case 0x4e: push(null); break; // NONE
      case 0x88: push(true); break; // NEWTRUE
      case 0x89: push(false); break; // NEWFALSE
      case 0x4a: { need(4); p += 4; push(view.getInt32(p - 4, true)); break; } // BININT
      case 0x4b: push(u8()); break; // BININT1
      case 0x4d: push(u16()); break; // BININT2
      case 0x8a: push(decodeLong(take(u8()))); break; // LONG1
      case 0x8b: { need(4); p += 4; push(decodeLong(take(view.getInt32(p - 4, true)))); break; } // LONG4
      case 0x49: push(decodeTextInt(line(), false)); break; // INT
      case 0x4c: push(decodeTextInt(line(), true)); break; // LONG
      case 0x47: { need(8); p += 8; push(view.getFloat64(p - 8, false)); break; } // BINFLOAT (big-endian)
      case 0x46: push(Number(line())); break; // FLOAT
      case 0x58: push(utf8.decode(take(u32()))); break; // BINUNICODE
      case 0x8c: push(utf8.decode(take(u8()))); break; // SHORT_BINUNICODE
      case 0x8d: push(utf8.decode(take(u64()))); break; // BINUNICODE8
      case 0x56: push(decodeRawUnicode(line())); break; // UNICODE
      case 0x55: push(utf8.decode(take(u8()))); break; // SHORT_BINSTRING (a Python 2 str)
      case 0x54: { need(4); p += 4; push(utf8.decode(take(view.getInt32(p - 4, true)))); break; } // BINSTRING
      case 0x53: push(decodeQuoted(line())); break; // STRING
      case 0x43: push(take(u8()).slice()); break; // SHORT_BINBYTES
      case 0x42: push(take(u32()).slice()); break; // BINBYTES
      case 0x8e: push(take(u64()).slice()); break; // BINBYTES8
      case 0x96: push(take(u64()).slice()); break; // BYTEARRAY8
      case 0x7d: push(new PyDict()); break; // EMPTY_DICT
      case 0x5d: push([]); break; // EMPTY_LIST
      case 0x29: push(tuple([])); break; // EMPTY_TUPLE
      case 0x8f: push(new PySet()); break; // EMPTY_SET
      case 0x64: { const d = new PyDict(); setItems(d, popMark()); push(d); break; } // DICT
      case 0x6c: push(popMark()); break; // LIST
      case 0x74: push(tuple(popMark())); break; // TUPLE
      case 0x85: push(tuple([pop()])); break; // TUPLE1
      case 0x86: { const b = pop(); push(tuple([pop(), b])); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); push(tuple([pop(), b, c])); break; } // TUPLE3
      case 0x91: push(new PySet(popMark())); break; // FROZENSET
      case 0x61: { const v = pop(); appendItems(top(), [v]); break; } // APPEND
      case 0x65: { const items = popMark(); appendItems(top(), items); break; } // APPENDS
      case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const items = popMark(); setItems(top(), items); break; } // SETITEMS
      case 0x90: { // ADDITEMS
        const items = popMark();
        const s = top();
        if (!(s instanceof PySet)) throw new PickleError(`ADDITEMS on a ${describe(s)}`);
        s.items.push(...items);
        break;
      }
      case 0x71: memoPut(u8(), top()); break; // BINPUT
      case 0x72: memoPut(u32(), top()); break; // LONG_BINPUT
      case 0x94: memoPut(memo.size, top()); break; // MEMOIZE
      case 0x70: memoPut(Number(line()), top()); break; // PUT
      case 0x68: push(memoGet(u8())); break; // BINGET
      case 0x6a: push(memoGet(u32())); break; // LONG_BINGET
      case 0x67: push(memoGet(Number(line()))); break; // GET
      case 0x63: { const module = line(); push(env.resolveGlobal(module, line())); break; } // GLOBAL
      case 0x93: push(stackGlobal()); break; // STACK_GLOBAL
      case 0x52: { const args = argsOf(pop()); push(callable(pop()).call(args)); break; } // REDUCE
      case 0x81: { const args = argsOf(pop()); push(callable(pop()).call(args)); break; } // NEWOBJ (cls.__new__(cls, *args))
      case 0x92: { // NEWOBJ_EX: keyword arguments would change what the constructor means; none are expected
        const kwargs = pop();
        const args = argsOf(pop());
        if (!(kwargs instanceof PyDict) || kwargs.size) throw new PickleError('NEWOBJ_EX with keyword arguments');
        push(callable(pop()).call(args));
        break;
      }
      case 0x69: { // INST: module and name inline, arguments since the MARK
        const module = line();
        const g = env.resolveGlobal(module, line());
        push(g.call(popMark()));
        break;
      }
      case 0x6f: { const [cls, ...args] = popMark(); push(callable(cls).call(args)); break; } // OBJ
      case 0x62: { const state = pop(); build(top(), state); break; } // BUILD
      case 0x51: push(env.persistentLoad(pop())); break; // BINPERSID
      case 0x50: push(env.persistentLoad(line())); break; // PERSID
      case 0x82: case 0x83: case 0x84: // EXT1, EXT2, EXT4
        throw new PickleError(`the pickle uses the copyreg extension registry (opcode 0x${op.toString(16)} at byte ${at}), which names globals out of sight`);
      case 0x97: case 0x98: // NEXT_BUFFER, READONLY_BUFFER
        throw new PickleError(`the pickle uses out-of-band buffers (opcode 0x${op.toString(16)} at byte ${at}), which a file cannot carry`);
      default:
        throw new PickleError(`unknown pickle opcode 0x${op.toString(16)} at byte ${at}`);
    }
  }
}

/** A short description of a pickled value for error messages. */
export function describe(v: unknown): string {
  if (v === null) return 'None';
  if (isTuple(v)) return `tuple of ${v.length}`;
  if (Array.isArray(v)) return `list of ${v.length}`;
  if (v instanceof PyDict) return `dict of ${v.size}`;
  if (v instanceof Uint8Array) return `bytes of ${v.length}`;
  if (typeof v === 'object') return (v as { describe?: () => string }).describe?.() ?? v.constructor.name;
  return typeof v === 'string' ? `str "${v.length > 40 ? `${v.slice(0, 40)}...` : v}"` : `${typeof v} ${String(v)}`;
}
