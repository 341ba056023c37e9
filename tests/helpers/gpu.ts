import { Gpu } from '../../src/gpu/device';

let shared: Promise<Gpu> | null = null;

/** One device per test file: creating devices is slow on software adapters. */
export function testGpu(): Promise<Gpu> {
  shared ??= Gpu.create();
  return shared;
}
