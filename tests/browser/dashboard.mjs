// Opens the dashboard in Debian's Chromium (headless), enters the read key when the page asks
// for one, waits until every panel has drawn from at least `polls` rounds, then prints what
// the page shows as JSON on stdout and saves a screenshot.
//
//   node dashboard.mjs --url http://127.0.0.1:8080/ --out shot.png [--key K] [--polls 2]
//                      [--width 1920 --height 1080] [--window MINUTES] [--by BREAKDOWN]
//                      [--chromium /usr/bin/chromium]
import { chromium } from "playwright-core";
import { parseArgs } from "node:util";

const { values: opt } = parseArgs({
  options: {
    url: { type: "string" },
    out: { type: "string" },
    key: { type: "string", default: "" },
    polls: { type: "string", default: "2" },
    width: { type: "string", default: "1920" },
    height: { type: "string", default: "1080" },
    chromium: { type: "string", default: "/usr/bin/chromium" },
    timeout: { type: "string", default: "30000" },
    window: { type: "string", default: "" },
    by: { type: "string", default: "" },
  },
});
if (!opt.url || !opt.out) throw new Error("--url and --out are required");
const timeout = Number(opt.timeout);

// The flags keep Chromium off the network beyond localhost and fit a root, GPU-less runner;
// Playwright gives it a new empty profile.
const browser = await chromium.launch({
  executablePath: opt.chromium,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const result = { errors: [], askedForKey: false };
try {
  const page = await browser.newPage({ viewport: { width: Number(opt.width), height: Number(opt.height) } });
  page.on("pageerror", (err) => result.errors.push(String(err)));
  await page.goto(opt.url, { timeout });
  if (opt.key) {
    await page.waitForSelector("#key-dialog:not([hidden])", { timeout });
    result.askedForKey = true;
    await page.fill("#key-input", opt.key);
    await page.click("#key-form button[type=submit]");
  }
  const polled = (n) => page.waitForFunction(
    (n) => Number(document.body.dataset.polls) >= n
      && [...document.querySelectorAll(".panel[data-state]")].every((p) => p.dataset.state !== "loading"),
    n, { timeout });
  await polled(Number(opt.polls));
  if (opt.window) {
    const done = Number(await page.evaluate(() => document.body.dataset.polls));
    await page.selectOption("#window", opt.window);
    await polled(done + 1);
  }
  if (opt.by) {
    // Switch the funnel's breakdown as a person would, then wait for a round drawn with it.
    const done = Number(await page.evaluate(() => document.body.dataset.polls));
    await page.selectOption("#funnel-by", opt.by);
    await polled(done + 2);
  }
  Object.assign(result, await page.evaluate(() => {
    const tile = (id) => {
      const t = document.querySelector(id);
      return { value: t.dataset.value, text: t.querySelector(".value").textContent };
    };
    const all = (sel) => [...document.querySelectorAll(sel)];
    return {
      storedKey: localStorage.getItem("shopstream.readKey"),
      panels: Object.fromEntries(all(".panel[data-state]").map((p) => [p.id, {
        state: p.dataset.state, note: p.querySelector(".note").textContent }])),
      kpis: Object.fromEntries(["gmv", "orders", "paid", "success", "aov"].map((k) => [k, tile(`#kpi-${k}`)])),
      pipeline: Object.fromEntries(["processed", "dead", "lag"].map((k) => [k, tile(`#pipe-${k}`)])),
      funnel: {
        name: document.querySelector("#funnel-name").value,
        by: document.querySelector("#funnel-by").value,
        steps: all("#funnel-steps .step").map((s) => ({
          step: Number(s.dataset.step), count: Number(s.dataset.count),
          text: s.querySelector(".count").textContent })),
        drop: document.querySelector("#funnel-drop").textContent,
        breakdown: all("#funnel-breakdown tbody tr").map((r) => [...r.cells].map((c) => c.textContent)),
      },
      rooms: all("#rooms tbody tr").map((r) => [...r.cells].map((c) => c.textContent)),
      channels: Object.fromEntries(all("#channels tbody tr").map((r) => [r.dataset.channel,
        [...r.cells].map((c) => c.textContent)])),
      sales: all("#sales .sale").map((s) => ({ id: s.dataset.sale, available: Number(s.dataset.available),
        reserved: Number(s.dataset.reserved), sold: Number(s.dataset.sold), text: s.textContent })),
      alerts: all("#alerts li").map((li) => li.textContent),
      traffic: Object.fromEntries(all("#traffic tbody tr").map((r) => [r.dataset.channel,
        [...r.cells].map((c) => c.textContent)])),
      campaigns: all("#campaigns .camp").map((c) => ({ campaign: c.dataset.campaign,
        spend: c.dataset.spend, gmv: c.dataset.gmv, roas: c.querySelector(".roas").textContent,
        below: c.classList.contains("below") })),
      floor: document.querySelector("#campaigns").dataset.floor,
      adsAlerts: all("#ads-alerts li").map((li) => ({ id: li.dataset.alert, text: li.textContent })),
      stock: all("#stock tbody tr").map((r) => [...r.cells].map((c) => c.textContent)),
      returns: all("#returns tbody tr").map((r) => [...r.cells].map((c) => c.textContent)),
      gmvPoints: document.querySelector("#chart-gmv polyline")?.getAttribute("points").split(" ").length ?? 0,
      orderBars: document.querySelectorAll("#chart-orders rect.bar").length,
    };
  }));
  await page.screenshot({ path: opt.out });
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(result) + "\n");
