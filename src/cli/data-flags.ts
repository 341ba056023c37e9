/**
 * The flags every command that reads a question set shares: where a Hugging Face dataset id's
 * rows come from (config, split, revision) and MedMCQA's answer-index base.
 */
import type { LoadOptions } from '../tasks/datasets';
import { stderrProgress } from './args';

export const DATA_FLAGS = {
  config: { type: 'string' },
  split: { type: 'string' },
  revision: { type: 'string' },
  'cop-base': { type: 'string' },
} as const;

export const DATA_HELP = `  --data also takes a .parquet file or URL, or a Hugging Face dataset id (owner/name, resolved with
  the Hub's file listing, downloaded once into ~/.cache/agentark or $AGENTARK_CACHE):
  --config NAME          Hub dataset config (subset), e.g. main (default: the only one)
  --split NAME           Hub dataset split (default test)
  --revision REV         Hub dataset revision (default main)
  --cop-base 0|1         MedMCQA: "cop" counts options from 0 or 1 (default: read from the file;
                         Parquet from the Hub: 0)
`;

/** LoadOptions from the parsed flags; throws an Error naming a bad value. */
export function dataOptions(
  values: Record<string, unknown>,
  quiet = false,
): Pick<LoadOptions, 'config' | 'split' | 'revision' | 'copBase' | 'onProgress'> {
  const cop = values['cop-base'];
  if (cop !== undefined && cop !== '0' && cop !== '1')
    throw new Error(`--cop-base must be 0 or 1, got ${JSON.stringify(cop)}`);
  const str = (k: string) => (typeof values[k] === 'string' ? (values[k] as string) : undefined);
  return {
    ...(str('config') !== undefined ? { config: str('config') } : {}),
    ...(str('split') !== undefined ? { split: str('split') } : {}),
    ...(str('revision') !== undefined ? { revision: str('revision') } : {}),
    ...(cop !== undefined ? { copBase: Number(cop) as 0 | 1 } : {}),
    ...(quiet ? {} : { onProgress: stderrProgress('data') }),
  };
}
