/**
 * The tasks a compute worker runs, by name. Each module registers its own tasks here;
 * a task gets plain data (typed arrays arrive as transferables) and returns a TaskOutput.
 */
import { TaskOutput } from './protocol';

export type Task = (args: never) => Promise<TaskOutput> | TaskOutput;

const registry = new Map<string, Task>();

export function registerTasks(tasks: Record<string, Task>): void {
  for (const [name, fn] of Object.entries(tasks)) registry.set(name, fn);
}

export function getTask(name: string): Task | undefined {
  return registry.get(name);
}

export function taskNames(): string[] {
  return [...registry.keys()];
}
