/**
 * The one reader of node properties. Flows are written by the editor, by hand, by scripts and by
 * older versions, so any property may be absent, a string where a number is meant, or one of the
 * editor's "use the default" values ('', 'auto', 'default'): all of those take the default.
 */

/** The editor's ways of saying "use the default". */
export function isBlank(v: unknown): boolean {
  return v === undefined || v === null || v === '' || v === 'auto' || v === 'default';
}

/** A number; `name` is the property as the editor labels it, for the error. */
export function numberProp(value: unknown, fallback: number, name: string): number {
  if (isBlank(value)) return fallback;
  const n = typeof value === 'number' ? value : Number(String(value).trim());
  if (!Number.isFinite(n)) throw new Error(`${name} must be a number, got ${JSON.stringify(value)}`);
  return n;
}

export function intProp(value: unknown, fallback: number, name: string): number {
  const n = numberProp(value, fallback, name);
  if (!Number.isInteger(n)) throw new Error(`${name} must be a whole number, got ${JSON.stringify(value)}`);
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
