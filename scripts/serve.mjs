// Serves the whole local platform on 127.0.0.1:${PORT:-8787} until SIGINT/SIGTERM.
import { startPlatform, ROOT } from "./platform.mjs";
import path from "node:path";

const port = Number(process.env.PORT ?? 8787);
const platform = await startPlatform({
  port,
  persistTo: path.join(ROOT, ".wrangler/state/v3"),
  onOutput: (line) => console.log(line),
});
const base = `http://127.0.0.1:${port}`;
console.log(`
The platform is serving on ${base} (migrations applied: ${platform.migrations.join(", ") || "none new"}).
Try:
  curl -s -H 'Host: api.do' ${base}/health
  curl -s -H 'Host: myapp.do' ${base}/hello              # user worker, production namespace
  curl -s -H 'Host: myapp.staging.do' ${base}/hello      # user worker, staging namespace
  curl -si -X POST -H 'Host: myapp.do' ${base}/login     # its redirect and cookie, passed on (never followed)
  curl -s -H 'Host: api.do' -H 'X-API-Key: dev-admin-key' ${base}/api/do/services
  curl -s -H 'Host: nobody-here.com' ${base}/            # waitlist page
  curl -s -H 'Host: api.do' -H 'X-API-Key: dev-admin-key' "${base}/api/logs?requestId=…"   # a request's lines (2 s later)
Ctrl-C stops everything.`);

let stopping = false;
async function stop(signal) {
  if (stopping) return;
  stopping = true;
  console.log(`\n${signal}: stopping the platform`);
  await platform.dispose();
  process.exit(0);
}
process.on("SIGINT", () => stop("SIGINT"));
process.on("SIGTERM", () => stop("SIGTERM"));
