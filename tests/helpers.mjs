// Test helpers: start the platform (the same launcher as scripts/dev) and send requests to it
// the way curl does, with an explicit Host header over real HTTP on loopback.
import http from "node:http";
import { startPlatform } from "../scripts/platform.mjs";

/**
 * Starts the platform on a free port and collects every line workerd prints. The log pipeline
 * (tail workers) is off unless a test asks for it (`logPipeline: true`, tests/logs.test.mjs):
 * locally it shares workerd's one thread with the producers, which production never does, and
 * the timing-sensitive tests should not pay for it.
 */
export async function platform(options = {}) {
  const logs = [];
  const p = await startPlatform({ port: 0, onOutput: (line) => logs.push(line), logPipeline: false, ...options });
  return { ...p, logs };
}

/** An HTTP request to `base` with the given Host header; resolves to {status, headers, text, json}. */
export function request(base, host, path = "/", { method = "GET", headers = {}, body } = {}) {
  const url = new URL(path, base);
  return new Promise((resolve, reject) => {
    const req = http.request(
      // agent: false: a fresh connection per request, as curl does (a kept-alive socket can be
      // closed by workerd when a response is sent before the request body was read).
      { hostname: url.hostname, port: url.port, path: url.pathname + url.search, method, headers: { host, ...headers }, agent: false },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json;
          try { json = JSON.parse(text); } catch { json = undefined; }
          resolve({ status: res.statusCode, headers: res.headers, text, json });
        });
      },
    );
    req.on("error", reject);
    if (body !== undefined) req.write(typeof body === "string" || Buffer.isBuffer(body) ? body : JSON.stringify(body));
    req.end();
  });
}
