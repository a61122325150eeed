/** Entry point of the CRF helper thread (see parallel.ts): runs the second half of each job. */
import { MessagePort, parentPort, workerData } from 'worker_threads';
import { HelperJob, helperRun } from './parallel';

const port = (workerData as { port: MessagePort }).port;
if (!parentPort) throw new Error('crf-helper must run in a worker thread');
parentPort.on('message', (job: HelperJob) => helperRun(job, port));
