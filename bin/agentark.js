#!/usr/bin/env node
// Entry point of the `agentark` CLI: runs the TypeScript sources through tsx's loader so the CLI
// works straight after `npm install`, without a build step.
import { register } from 'tsx/esm/api';

register();
const argv = process.argv.slice(2);
// On a machine without a GPU driver, re-run with a software Vulkan adapter: this must happen
// before anything loads Dawn, which reads the driver's environment once.
const { softwareDriverFor, rerunWithSoftwareDriver } = await import('../src/cli/software-adapter.ts');
const software = softwareDriverFor(argv);
if (software) {
  process.exitCode = await rerunWithSoftwareDriver(software.driver, software.adapter);
} else {
  const { main } = await import('../src/cli/main.ts');
  process.exitCode = await main(argv);
}
