import { ComputeEngine } from '@cortex-js/compute-engine';
const ce = new ComputeEngine();
for (const s of ['x^2+2x+1', '\\left( 3, \\frac{\\pi}{2} \\right)', '(-\\infty, 2)', '[1,3)', 'p-q', '\\text{Evelyn}', '3\\sqrt{13}', '2x', 'y=2x+3', '\\infty', '1,2,3', '\\{1,2\\}', '0.\\overline{3}','5!', '\\binom{5}{2}', '1.5\\%', 'a^{2}b', '\\sqrt[3]{2}', '\\$5', '\\tan 30','2.5 \\times 10^{3}', '10^{\\circ}']) {
  const e = ce.parse(s);
  console.log(JSON.stringify(s), JSON.stringify(e.json), e.isValid, e.unknowns);
}
const x = ce.parse('x^2+2x+1'); 
console.log(x.subs({ x: 1.3 }).N().re, ce.parse('(x+1)^2').subs({x:1.3}).N().re);
