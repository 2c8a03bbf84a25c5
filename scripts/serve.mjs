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

// The console's local admin (local dev only; a deployment creates its admins through
// `PUT /api/auth/users/{id}/role` with the real ADMIN_API_KEY). Idempotent across restarts.
const CONSOLE_ADMIN = { email: "admin@example.com", password: "dev-admin-password" };
async function seedConsoleAdmin() {
  const post = (path, body) => fetch(`${base}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  await post("/api/auth/signup", CONSOLE_ADMIN); // 409 once it exists
  const login = await post("/api/auth/login", CONSOLE_ADMIN);
  if (!login.ok) throw new Error(`console admin login: ${login.status}`);
  const { user } = await login.json();
  const role = await fetch(`${base}/api/auth/users/${user.id}/role`, {
    method: "PUT", headers: { "content-type": "application/json", "x-api-key": "dev-admin-key" }, body: JSON.stringify({ role: "admin" }),
  });
  if (!role.ok) throw new Error(`console admin role: ${role.status}`);
}
let consoleNote = `  open ${base}/console  (sign in as ${CONSOLE_ADMIN.email} / ${CONSOLE_ADMIN.password})`;
try {
  await seedConsoleAdmin();
} catch (e) {
  consoleNote = `  (the console's dev admin could not be created: ${e.message})`;
}
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
${consoleNote}
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
