// The local platform's front door: a Node HTTP relay on the public port, in front of
// Miniflare's entry. It exists for one reason: workerd builds `request.url` from the Host
// header and answers 500 before any worker runs when that Host is not representable as a URL
// host (a space, markup, `%`, a port above 65535, two Host headers), where Cloudflare's edge
// answers 400. The relay answers those itself with the platform's 400 problem+json and passes
// every other request through untouched: raw headers in their order and case, bodies streamed
// both ways, WebSocket upgrades as raw sockets, keep-alive on both sides.
//
// One care: workerd answers some requests early (a 413 on a Content-Length over the limit, a 429,
// a tenant's 401) and then closes the connection without reading the rest of the body, which
// resets it. A relay that wrote the body chunk by chunk could hit that reset in a write made
// from JavaScript before it read the answer waiting in its socket, and lose the answer. So a
// body that arrives in one burst is collected and written in one go: the rest of that write is
// flushed by the event loop, which reads a socket before it writes to it. A body that pauses
// (a client that waits for the answer's first bytes before sending more: SSE with a request
// stream, a slow upload) streams from its first pause on, as it would directly.
import http from "node:http";
import net from "node:net";
import { randomBytes } from "node:crypto";

/** A request body is collected up to this size, then streams. */
const COLLECT_LIMIT = 64 << 20;
/** ... and while no pause between its chunks is longer than this. */
const IDLE_MS = 20;

/**
 * What workerd can turn into a URL host: a registered name of letters, digits, `.`, `_`, `-`,
 * or an IPv6 literal, then an optional port up to 65535. Everything else is the edge's 400.
 * (Names workerd accepts but the gateway refuses, like `a..b`, still reach the api's own 400.)
 */
export function hostProblem(rawHeaders) {
  const hosts = [];
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i].toLowerCase() === "host") hosts.push(rawHeaders[i + 1]);
  if (hosts.length === 0) return "missing Host header";
  if (hosts.length > 1) return "more than one Host header";
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(\d{1,5}))?$/.exec(hosts[0]);
  if (!m) return "invalid Host header: not a host name";
  if (m[2] !== undefined && Number(m[2]) > 65535) return "invalid Host header: port out of range";
  if (m[1].startsWith("[")) {
    try { new URL(`http://${m[1]}/`); } catch { return "invalid Host header: not an IPv6 address"; }
  }
  return null;
}

const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/** A ULID, like the api's request ids (48-bit millisecond time, 80 random bits). */
function ulid() {
  let time = Date.now(), out = "";
  for (let i = 0; i < 10; i++) { out = CROCKFORD[time % 32] + out; time = Math.floor(time / 32); }
  const random = randomBytes(16);
  for (let i = 0; i < 16; i++) out += CROCKFORD[random[i] % 32];
  return out;
}

function problem(status, title, detail) {
  const requestId = ulid();
  const body = JSON.stringify({ type: `https://apis.do/problems/${title.toLowerCase().replace(/ /g, "-")}`, title, status, detail, requestId });
  return { requestId, body, headers: { "content-type": "application/problem+json", "x-request-id": requestId, "cache-control": "no-store", "content-length": Buffer.byteLength(body) } };
}

/**
 * An answer's raw headers without Connection and Keep-Alive, which the relay's own connection
 * to the client decides. (A request's go on unchanged: the api itself drops the headers a
 * client's Connection names, as it would directly.)
 */
function endToEnd(rawHeaders) {
  const out = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (!/^(connection|keep-alive)$/i.test(rawHeaders[i])) out.push(rawHeaders[i], rawHeaders[i + 1]);
  }
  return out;
}

function rawHead(req) {
  let head = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
  for (let i = 0; i < req.rawHeaders.length; i += 2) head += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
  return head + "\r\n";
}

/**
 * Starts the relay on `host:port` (0: a free port) in front of `upstream` (a URL). Resolves to
 * `{ url, close }`.
 */
export async function startFront({ host = "127.0.0.1", port = 0, upstream }) {
  const target = new URL(upstream);
  // A fresh connection per request to workerd: a pooled one can be closed by workerd as it is
  // reused, which would turn into a 502 here where the client would have had an answer.
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const server = http.createServer({
    // Lenient parsing like workerd's own (e.g. bytes after a `Connection: close` request).
    insecureHTTPParser: true, requireHostHeader: false, maxHeaderSize: 1 << 20, requestTimeout: 0, headersTimeout: 0, keepAliveTimeout: 5000, joinDuplicateHeaders: false });

  // A client that half-closes after its request (`Connection: close` and FIN) still gets its
  // answer, as from workerd; Node's default would abort the request in flight.
  server.httpAllowHalfOpen = true;
  const served = new WeakSet();
  server.on("request", (req, res) => {
    served.add(req.socket);
    const bad = hostProblem(req.rawHeaders);
    if (bad) {
      const p = problem(400, "Bad Request", bad);
      res.writeHead(400, { ...p.headers, connection: "close" });
      res.end(p.body);
      return;
    }
    const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.rawHeaders, agent, setHost: false });
    let answered = false;
    up.on("response", (upRes) => {
      answered = true;
      // workerd sends no Connection header, even when it closes; neither does the relay (Node's
      // server then keeps or closes the connection as the client asked, without saying so).
      res.removeHeader("connection");
      res.writeHead(upRes.statusCode, upRes.statusMessage, endToEnd(upRes.rawHeaders));
      upRes.pipe(res);
      upRes.on("error", () => res.destroy());
    });
    up.on("error", (err) => {
      if (answered) { res.destroy(); return; }
      const p = problem(502, "Bad Gateway", `the local runtime did not answer: ${err.code ?? err.message}`);
      if (!res.headersSent) { res.writeHead(502, p.headers); res.end(p.body); } else res.destroy();
    });
    res.on("close", () => { if (!res.writableFinished) up.destroy(); });
    // The body is collected and sent on in one write while it keeps arriving (see the top of
    // the file); a body that pauses for IDLE_MS, or outgrows COLLECT_LIMIT, streams from there.
    let chunks = [], size = 0, streaming = false, timer;
    const stream = () => {
      if (streaming) return;
      streaming = true;
      clearTimeout(timer);
      req.off("data", collect);
      up.flushHeaders();
      for (const chunk of chunks) up.write(chunk);
      chunks = null;
      req.pipe(up);
    };
    const arm = () => { clearTimeout(timer); timer = setTimeout(stream, IDLE_MS); };
    const collect = (chunk) => { chunks.push(chunk); size += chunk.length; if (size > COLLECT_LIMIT) stream(); else arm(); };
    req.on("data", collect);
    req.once("end", () => { if (!streaming) { clearTimeout(timer); up.end(Buffer.concat(chunks)); } });
    arm();
    req.on("error", () => up.destroy());
  });

  server.on("upgrade", (req, socket, head) => {
    const bad = hostProblem(req.rawHeaders);
    if (bad) {
      const p = problem(400, "Bad Request", bad);
      socket.end(`HTTP/1.1 400 Bad Request\r\n${Object.entries(p.headers).map(([k, v]) => `${k}: ${v}`).join("\r\n")}\r\nconnection: close\r\n\r\n${p.body}`);
      return;
    }
    const up = net.connect(Number(target.port), target.hostname, () => {
      up.write(rawHead(req));
      if (head.length) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    up.on("error", () => socket.destroy());
    socket.on("error", () => up.destroy());
    up.on("close", () => socket.destroy());
    socket.on("close", () => up.destroy());
  });

  // A malformed request line or header block: the edge's 400 too.
  server.on("clientError", (err, socket) => {
    if (!socket.writable || err.code === "ECONNRESET") { socket.destroy(); return; }
    // Bytes after a request that had no framing for them (a body sent without Content-Length,
    // which Node's client does for DELETE): workerd ignores them, so the request in flight is
    // answered and the connection then closed.
    if (served.has(socket)) {
      const inFlight = socket._httpMessage;
      if (inFlight && !inFlight.writableFinished) inFlight.once("finish", () => socket.end());
      else socket.end();
      return;
    }
    const p = problem(400, "Bad Request", "malformed HTTP request");
    socket.end(`HTTP/1.1 400 Bad Request\r\n${Object.entries(p.headers).map(([k, v]) => `${k}: ${v}`).join("\r\n")}\r\nconnection: close\r\n\r\n${p.body}`);
  });

  await new Promise((resolve, reject) => { server.once("error", reject); server.listen(port, host, resolve); });
  const address = server.address();
  const url = new URL(`http://${host}:${address.port}/`);
  return {
    url,
    close: () => new Promise((resolve) => { server.closeAllConnections(); agent.destroy(); server.close(() => resolve()); }),
  };
}
