/**
 * The one reader of node properties. Flows are written by the editor, by hand, by scripts and by
 * older versions, so any property may be absent, a string where a number is meant, or one of the
 * editor's "use the default" values ('', 'auto', 'default'): all of those take the default.
 */

/** The editor's ways of saying "use the default". */
export function isBlank(v: unknown): boolean {
  return v === undefined || v === null || v === '' || v === 'auto' || v === 'default';
}

/**
 * The range a numeric property must be in. The editor's validators (resources/deeplab-editor.js)
 * use the same ranges for each field: keep the two equal.
 */
export interface Range {
  min?: number;
  max?: number;
  minExclusive?: boolean;
  maxExclusive?: boolean;
}

/** "from 1 to 100", "above 0 and at most 1", ... as the editor words it. */
export function describeRange(r: Range): string {
  const hasMin = r.min !== undefined;
  const hasMax = r.max !== undefined;
  if (hasMin && hasMax && !r.minExclusive && !r.maxExclusive) return `from ${r.min} to ${r.max}`;
  const parts: string[] = [];
  if (hasMin) parts.push(`${r.minExclusive ? 'above' : 'at least'} ${r.min}`);
  if (hasMax) parts.push(`${r.maxExclusive ? 'below' : 'at most'} ${r.max}`);
  return parts.join(' and ');
}

function checkRange(n: number, r: Range | undefined, name: string, value: unknown, what: string): void {
  if (!r) return;
  const low = r.min !== undefined && (r.minExclusive ? n <= r.min : n < r.min);
  const high = r.max !== undefined && (r.maxExclusive ? n >= r.max : n > r.max);
  if (low || high) throw new Error(`${name} must be ${what} ${describeRange(r)}, got ${JSON.stringify(value)}`);
}

/** A number; `name` is the property as the editor labels it, for the error. */
export function numberProp(value: unknown, fallback: number, name: string, range?: Range): number {
  if (isBlank(value)) return fallback;
  const n = typeof value === 'number' ? value : Number(String(value).trim());
  if (!Number.isFinite(n)) throw new Error(`${name} must be a number, got ${JSON.stringify(value)}`);
  checkRange(n, range, name, value, 'a number');
  return n;
}

export function intProp(value: unknown, fallback: number, name: string, range?: Range): number {
  const n = numberProp(value, fallback, name);
  if (!Number.isInteger(n)) throw new Error(`${name} must be a whole number, got ${JSON.stringify(value)}`);
  checkRange(n, range, name, value, 'a whole number');
  return n;
}

/** Checkboxes store booleans; hand-written flows and message overrides use 'true', 1 or 'on' too. */
export function boolProp(value: unknown, fallback: boolean): boolean {
  if (isBlank(value)) return fallback;
  return value === true || value === 'true' || value === 1 || value === '1' || value === 'on';
}

/**
 * One of a set of strings. Only absent or empty values take the default here: 'auto' and 'default'
 * are real choices of some selects (a backend, a policy).
 */
export function stringProp<T extends string>(value: unknown, fallback: T, allowed?: readonly T[]): T {
  if (value === undefined || value === null || value === '') return fallback;
  const s = String(value) as T;
  if (allowed && !allowed.includes(s)) throw new Error(`"${s}" is not one of ${allowed.join(', ')}`);
  return s;
}

/** A message property path from the config, `payload` where absent. */
export function pathProp(value: unknown, fallback = 'payload'): string {
  const s = typeof value === 'string' ? value.trim() : '';
  return (s || fallback).replace(/^msg\./, '');
}
