/**
 * Runs a fixture script with Debian's PyTorch (/usr/bin/python3 with python3-torch), the reference
 * the checkpoint tests compare against. The `python3` on PATH may be another interpreter without
 * torch, so the system one is named. A machine without torch fails the test, saying how to install
 * it: a missing reference must not pass CI by skipping.
 */
import { spawnSync } from 'child_process';

export const TORCH_PYTHON = '/usr/bin/python3';
const INSTALL = 'apt-get install python3-torch python3-torchvision';

/** The environment without what would point /usr/bin/python3 at another installation's modules. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PYTHONDONTWRITEBYTECODE: '1' };
  delete env.PYTHONPATH;
  delete env.PYTHONHOME;
  return env;
}

let checked = false;

function checkTorch(): void {
  if (checked) return;
  const r = spawnSync(TORCH_PYTHON, ['-c', 'import torch, numpy; print(torch.__version__)'], { encoding: 'utf8', env: cleanEnv(), cwd: '/' });
  if (r.error || r.status !== 0) {
    const why = r.error ? r.error.message : (r.stderr || '').trim().split('\n').pop();
    throw new Error(`PyTorch is needed for this test's reference files but ${TORCH_PYTHON} cannot import it (${why}): ${INSTALL}`);
  }
  checked = true;
}

export interface TorchPythonOptions {
  /** Milliseconds before the script is killed (default 10 minutes). */
  timeoutMs?: number;
  /** Working directory of the script (default: this process's). */
  cwd?: string;
}

/** Runs `script args...` with /usr/bin/python3 and returns its stdout; throws with its stderr when it fails. */
export function runTorchPython(script: string, args: string[], opts: TorchPythonOptions = {}): string {
  checkTorch();
  const r = spawnSync(TORCH_PYTHON, [script, ...args], {
    encoding: 'utf8',
    env: cleanEnv(),
    cwd: opts.cwd,
    timeout: opts.timeoutMs ?? 600_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) throw new Error(`${TORCH_PYTHON} ${script} could not run: ${r.error.message}`);
  if (r.status !== 0) {
    const how = r.signal ? `was killed by ${r.signal}` : `exited with ${r.status}`;
    throw new Error(`${TORCH_PYTHON} ${script} ${args.join(' ')} ${how}:\n${r.stderr.trim()}`);
  }
  return r.stdout;
}
