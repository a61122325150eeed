/**
 * The memory budget of one node for one message: every node that allocates per image works out
 * what it is about to need (width x height x classes x 4 bytes x copies, plus its fixed part)
 * BEFORE allocating, and either refuses with a MemoryBudgetError (its `code` reaches a Catch node
 * as msg.error.code) or picks a smaller working size that fits (fitSize).
 *
 * The budget is a node property in MB; blank takes DEEPLAB_MEMORY_BUDGET_MB where the process
 * sets it, else 512 MB: enough for a 513x513 (and a VOC 500x375) image at full resolution in
 * every stage with 21 classes (the dense CRF, the largest, needs about 160 MB there), while a
 * 4000x3000 photo's full-resolution float maps (1 GB each with 21 classes) are capped or refused.
 */

export const DEFAULT_MEMORY_BUDGET_MB = 512;
export const MEMORY_BUDGET_ENV = 'DEEPLAB_MEMORY_BUDGET_MB';
export const MB = 1024 * 1024;

/** The code on a refusal, for Catch flows (msg.error.code). */
export const OVER_BUDGET_CODE = 'DEEPLAB_OVER_BUDGET';

export class MemoryBudgetError extends Error {
  /** An own property, so Node-RED copies it to msg.error.code for Catch nodes. */
  readonly code = OVER_BUDGET_CODE;

  constructor(message: string, readonly need: number, readonly budget: number) {
    super(message);
    this.name = 'MemoryBudgetError';
  }
}

/** The budget where a node leaves it blank, in bytes: DEEPLAB_MEMORY_BUDGET_MB, else 512 MB. */
export function defaultMemoryBudget(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[MEMORY_BUDGET_ENV]?.trim();
  if (raw) {
    const mb = Number(raw);
    if (Number.isFinite(mb) && mb > 0) return Math.floor(mb * MB);
  }
  return DEFAULT_MEMORY_BUDGET_MB * MB;
}

/**
 * A node's budget property (MB, as the editor stores it) in bytes; blank values ('' / undefined /
 * 'default') take defaultMemoryBudget().
 */
export function memoryBudgetBytes(value: unknown, name = 'memory budget'): number {
  if (value === undefined || value === null || value === '' || value === 'default' || value === 'auto') return defaultMemoryBudget();
  const mb = typeof value === 'number' ? value : Number(String(value).trim());
  if (!(Number.isFinite(mb) && mb > 0)) throw new Error(`${name} must be a number of MB above 0 (or blank for the default), got ${JSON.stringify(value)}`);
  return Math.floor(mb * MB);
}

/** 1536 -> '1.5 KB', 22_000_000 -> '21.0 MB', 512 MiB -> '512 MB'. */
export function formatBytes(n: number): string {
  if (n >= 1024 * MB) return `${(n / (1024 * MB)).toFixed(2)} GB`;
  if (n >= MB) return `${(n / MB).toFixed(n % MB === 0 ? 0 : 1)} MB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${n} B`;
}

/**
 * Refuses when `need` bytes exceed the budget. `what` names the work (e.g. "probabilities at
 * 4000x3000x21"), `hint` says what the user can change.
 */
export function checkMemory(need: number, budget: number, what: string, hint = 'raise the node\'s memory budget or send a smaller image'): void {
  if (need <= budget) return;
  throw new MemoryBudgetError(`${what} needs ${formatBytes(need)}, above this node's memory budget of ${formatBytes(budget)}: ${hint}`, need, budget);
}

export interface Size {
  width: number;
  height: number;
}

/**
 * The size to work at: width x height itself when `perPixel * width * height + fixed` fits the
 * budget, else the largest size of (nearly) the same aspect ratio that fits; undefined when not
 * even `minSide` pixels on the shorter side fit.
 */
export function fitSize(width: number, height: number, perPixel: number, fixed: number, budget: number, minSide = 8): Size | undefined {
  if (perPixel * width * height + fixed <= budget) return { width, height };
  const room = budget - fixed;
  if (room <= 0) return undefined;
  const s = Math.sqrt(room / (perPixel * width * height));
  let w = Math.max(1, Math.floor(width * s));
  let h = Math.max(1, Math.floor(height * s));
  while (w * h * perPixel + fixed > budget && w > 1 && h > 1) {
    w--;
    h = Math.max(1, Math.floor((w * height) / width));
  }
  if (Math.min(w, h) < Math.min(minSide, width, height)) return undefined;
  return { width: w, height: h };
}
