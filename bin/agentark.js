#!/usr/bin/env node
// Entry point of the `agentark` CLI: runs the TypeScript sources through tsx's loader so the CLI
// works straight after `npm install`, without a build step.
import { register } from 'tsx/esm/api';

register();
const argv = process.argv.slice(2);
// On a machine without a GPU driver, re-run with a software Vulkan adapter: this must happen
// before anything loads Dawn, which reads the driver's environment once.
const { reportNoAdapter, rerunWithSoftwareDriver, searchAdapter } = await import('../src/cli/software-adapter.ts');
const search = searchAdapter(argv);
if (search.kind === 'software') {
  process.exitCode = await rerunWithSoftwareDriver(search.driver, search.adapter);
} else {
  if (search.kind === 'none') reportNoAdapter(search.tried);
  const { main } = await import('../src/cli/main.ts');
  process.exitCode = await main(argv);
}
