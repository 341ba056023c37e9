import { ComputeEngine } from '@cortex-js/compute-engine';
const ce = new ComputeEngine();
const t0 = performance.now();
const pairs = [['\\frac{1}{2}','0.5'],['\\sqrt{2}/2','\\frac{\\sqrt2}{2}'],['\\frac{\\sqrt{3}}{3}','\\frac{1}{\\sqrt{3}}'],['2\\sqrt{2}','\\sqrt{8}'],['x^2+2x+1','(x+1)^2'],['\\pi/2','\\frac{\\pi}{2}'],['3','4'],['\\frac{1}{3}','0.333'],['10^{10}','10000000000'],['e^{i\\pi}','-1'],['\\dfrac{3}{4}','0.75']];
for (const [a,b] of pairs) {
  const x = ce.parse(a), y = ce.parse(b);
  let eq: unknown; try { eq = x.isEqual(y); } catch (e) { eq = 'ERR '+(e as Error).message; }
  console.log(a, '|', b, '|', eq, x.json, y.json);
}
console.log('ms', performance.now()-t0);
