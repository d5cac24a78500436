// Opens a backtest report (a file on disk) in Debian's Chromium (headless), records console
// errors, page errors and every request the page makes, counts each chart's points and level
// lines, and prints
// that as JSON on stdout; with --out it also saves a full-page screenshot.
//
//   node report.mjs --file /path/report.html [--out shot.png] [--width 1400]
//                   [--chromium /usr/bin/chromium]
import { chromium } from "playwright-core";
import { parseArgs } from "node:util";
import { pathToFileURL } from "node:url";

const { values: opt } = parseArgs({
  options: {
    file: { type: "string" },
    out: { type: "string", default: "" },
    width: { type: "string", default: "1400" },
    chromium: { type: "string", default: "/usr/bin/chromium" },
  },
});
if (!opt.file) throw new Error("--file is required");

const browser = await chromium.launch({
  executablePath: opt.chromium,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const result = { url: pathToFileURL(opt.file).href, errors: [], requests: [] };
try {
  const page = await browser.newPage({ viewport: { width: Number(opt.width), height: 900 } });
  page.on("console", (msg) => { if (msg.type() === "error") result.errors.push(msg.text()); });
  page.on("pageerror", (err) => result.errors.push(String(err)));
  page.on("request", (req) => result.requests.push(req.url()));
  await page.goto(result.url, { waitUntil: "load" });
  Object.assign(result, await page.evaluate(() => ({
    title: document.title,
    sections: [...document.querySelectorAll("section[id]")].map((s) => s.id),
    charts: Object.fromEntries([...document.querySelectorAll("svg.chart")].map((svg) => [
      svg.dataset.chart,
      Object.fromEntries([...new Set([...svg.querySelectorAll("circle.pt")].map((c) => c.dataset.series))]
        .map((name) => [name, svg.querySelectorAll(`circle.pt[data-series="${CSS.escape(name)}"]`).length])),
    ])),
    limits: Object.fromEntries([...document.querySelectorAll("svg.chart")].map((svg) => [
      svg.dataset.chart, svg.querySelectorAll("line.limit").length])),
    drawn: [...document.querySelectorAll("svg.chart")].every((svg) => svg.getBoundingClientRect().width > 0),
  })));
  if (opt.out) await page.screenshot({ path: opt.out, fullPage: true });
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(result));
