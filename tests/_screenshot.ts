// Writes a PNG of a page in headless Chromium (the README's dashboard image):
//   deno run -A tests/_screenshot.ts URL OUT.png [WAIT_MS]
// For example, with `deno task demo --hold 30` running, its dashboard URL.

import { Chromium, findChromium } from "./_chromium.ts";

const [url, out, wait = "1500"] = Deno.args;
if (!url || !out) {
  console.error("usage: _screenshot.ts URL OUT.png [WAIT_MS]");
  Deno.exit(2);
}
const found = await findChromium();
if ("reason" in found) {
  console.error(found.reason);
  Deno.exit(1);
}
await using browser = await Chromium.launch(found.path);
const page = await browser.open(url, 1100, 900);
await page.waitFor("document.body.dataset.updated", 10_000, "a first snapshot");
await new Promise((r) => setTimeout(r, Number(wait)));
await Deno.writeFile(out, await page.screenshot());
console.log(`wrote ${out}`);
