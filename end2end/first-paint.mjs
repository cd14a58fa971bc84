// First contentful paint of a hosted page on a slow phone network, as DevTools' "Slow 3G"
// preset with 4x CPU slowdown emulates it (2 s round trip, 50 kB/s down), in Debian's
// Chromium. A figure, not a pass/fail test: scripts/test prints it beside the page weight.
//
// usage: node end2end/first-paint.mjs URL [--runs N]   (prints the median of N cold loads)
import { chromium } from "@playwright/test";

const url = process.argv[2];
const runsAt = process.argv.indexOf("--runs");
const runs = runsAt > 0 ? Number(process.argv[runsAt + 1]) : 3;
if (!url) {
  console.error("usage: node end2end/first-paint.mjs URL [--runs N]");
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"],
});
const paints = [];
for (let i = 0; i < runs; i++) {
  // A fresh context each time: nothing cached, a new connection to set up.
  const context = await browser.newContext({
    viewport: { width: 360, height: 640 },
    deviceScaleFactor: 2,
    isMobile: true,
  });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Network.emulateNetworkConditions", {
    offline: false,
    latency: 2000,
    downloadThroughput: 50 * 1024,
    uploadThroughput: 50 * 1024,
  });
  await cdp.send("Emulation.setCPUThrottlingRate", { rate: 4 });
  await page.goto(url, { waitUntil: "load", timeout: 120_000 });
  // The paint entry may be recorded just after `load`: wait for it (up to 10 s).
  const fcp = await page.evaluate(
    () =>
      new Promise((resolve) => {
        const seen = () => performance.getEntriesByName("first-contentful-paint")[0];
        if (seen()) return resolve(seen().startTime);
        new PerformanceObserver((list) => {
          const e = list.getEntriesByName("first-contentful-paint")[0];
          if (e) resolve(e.startTime);
        }).observe({ type: "paint", buffered: true });
        setTimeout(() => resolve(seen()?.startTime ?? null), 10_000);
      }),
  );
  if (fcp === null) {
    console.error("first-paint: no first-contentful-paint entry");
    process.exit(1);
  }
  paints.push(fcp);
  await context.close();
}
await browser.close();
paints.sort((a, b) => a - b);
const median = paints[Math.floor(paints.length / 2)];
console.log(
  `first-paint: first contentful paint ${(median / 1000).toFixed(2)} s (median of ${runs}; ` +
    `Slow 3G: 2 s round trip, 50 kB/s; 4x CPU slowdown)`,
);
