// The node's web page in headless Chromium: it loads, subscribes to a topic over WebSocket,
// shows a record published over REST, and fills the latency table from /stats.
// Usage: node page.mjs HTTP_HOST:PORT TOPIC [SCREENSHOT.png]
import { chromium } from "playwright-core";

const [http, topic, shot] = process.argv.slice(2);
if (!http || !topic) {
  console.error("usage: node page.mjs HTTP_HOST:PORT TOPIC [SCREENSHOT.png]");
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`http://${http}/?tail=${encodeURIComponent(topic)}`);
  await page.waitForFunction(
    () => document.getElementById("tail-status").textContent.startsWith("subscribed"),
    null, { timeout: 15000 });
  await page.waitForFunction(
    (t) => [...document.querySelectorAll("#topics td")].some((td) => td.textContent === t),
    topic, { timeout: 15000 });
  const value = "hello-from-rest-" + Date.now();
  const r = await fetch(`http://${http}/topics/${encodeURIComponent(topic)}/messages`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ value }),
  });
  if (!r.ok) throw new Error("REST publish failed: HTTP " + r.status + " " + (await r.text()));
  await page.waitForFunction(
    (v) => document.getElementById("tail").textContent.includes(v), value, { timeout: 15000 });
  await page.waitForFunction(
    () => [...document.querySelectorAll("#latency tbody tr")]
      .some((tr) => tr.cells[0].textContent === "produce" && Number(tr.cells[1].textContent) > 0),
    null, { timeout: 15000 });
  if (shot) await page.screenshot({ path: shot, fullPage: true });
  if (errors.length) throw new Error("page errors: " + errors.join("; "));
  console.log("ok: page subscribed, showed " + value + ", latency table filled");
} finally {
  await browser.close();
}
