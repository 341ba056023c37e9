/**
 * Distil & train: turn debate trajectories (the Teach page's last debate, a file, a URL such as a
 * dataset file on the Hugging Face Hub, or the built-in example) into training rows with R-SFT,
 * DA or PAD step labels, LoRA-train the loaded model on them in the engine worker, and for PAD
 * train the process reward model and run RL on a student. The page composes its cards
 * (views/train/): data, LoRA settings, the run (charts, checkpoints, the adapter), and PAD.
 */
import type { AppContext, Page } from '../client';
import { h } from '../dom';
import { dataCard } from './train/data-card';
import { loraCard } from './train/lora-card';
import { padCard } from './train/pad-card';
import { runCard } from './train/run-card';

export const trainPage: Page = {
  id: 'train',
  title: 'Distil & train',
  mount(root: HTMLElement, ctx: AppContext) {
    const data = dataCard(ctx);
    const lora = loraCard();
    const run = runCard(ctx, data, lora);
    const pad = padCard(ctx, data);
    root.append(h('div', { class: 'train-setup' }, data.el, lora.el, run.column), run.charts, pad);
    this.onShow = () => void data.refreshDebate();
  },
};
