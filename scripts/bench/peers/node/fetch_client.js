// Node's fetch (undici, keep-alive): CONC concurrent loops of GETs for
// SECS seconds. Usage: node fetch_client.js URL SECS CONC
'use strict';
const [url, secs, conc] = [process.argv[2], parseFloat(process.argv[3]),
  parseInt(process.argv[4], 10)];
let n = 0, errors = 0;
const deadline = performance.now() + secs * 1000;

async function worker() {
  while (performance.now() < deadline) {
    try {
      const r = await fetch(url);
      const body = await r.text();
      if (r.status === 200 && body.length > 0) n++; else errors++;
    } catch (e) {
      errors++;
    }
  }
}

const t0 = performance.now();
Promise.all(Array.from({ length: conc }, worker)).then(() => {
  const s = (performance.now() - t0) / 1000;
  console.log(`RESULT bench=http_client peer=node req_per_s=${(n / s).toFixed(1)} errors=${errors}`);
});
