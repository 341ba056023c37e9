// Worker entry: lets a worker_thread load the TypeScript fuzz worker (tsx), then runs it.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
