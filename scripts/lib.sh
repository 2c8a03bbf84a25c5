# Shared by scripts/dev, scripts/test and scripts/bench: one toolchain check and one build,
# so development, tests and benchmarks cannot drift. Source it; do not run it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
# cargo's bin first (the tools installed below are called by full path from there), then
# rustup's usual home for cargo itself, then the npm binaries.
export PATH="$CARGO_BIN:$HOME/.cargo/bin:$ROOT/node_modules/.bin:$PATH"
export WRANGLER_SEND_METRICS=false
export CI="${CI:-}"

WORKERS=(api db auth do tail)
# Cargo package of each worker crate (the service crates are suffixed to keep `do` legal).
declare -A PACKAGE=([api]=api [db]=db-service [auth]=auth-service [do]=do-service [tail]=tail-service [bench-floor]=bench-floor)

say() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }

# The Node.js installed when the system's is older than package.json's `engines.node` (the
# project's minimum; wrangler 4.164 needs 22.12): the active LTS from the npm registry's Node
# binary package, plus the npm release line it ships with (the binary package has no npm).
NODE_VERSION=24.22.3
NPM_VERSION=11.21.2
NODE_HOME="$ROOT/.tools/node"

# The version of a package as Cargo.lock pins it.
lock_version() {
  awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock
}

# True when version $1 >= version $2 (both x.y.z, no leading v).
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

# The minimum Node.js version: package.json's `"node": ">=x.y.z"`.
node_minimum() { sed -n 's/.*"node": *">=\([0-9.]*\)".*/\1/p' package.json | head -n1; }

# Puts a new enough Node.js first on PATH, so npm, npx, wrangler and `node --test` all run on
# it: the system's when it meets the minimum, else NODE_VERSION installed into .tools/node
# (git-ignored, like node_modules) with `npm pack` from the npm registry. Sets `installed=1`
# in the caller when it installs; a second run only compares versions (a few ms).
ensure_node() {
  local minimum have
  minimum="$(node_minimum)"
  if [ -z "$minimum" ]; then say "package.json has no engines.node minimum"; return 1; fi
  if ! version_ge "$NODE_VERSION" "$minimum"; then
    say "NODE_VERSION $NODE_VERSION is below package.json's minimum $minimum"; return 1
  fi
  have="$(node --version 2>/dev/null | sed 's/^v//' || true)"
  if [ -n "$have" ] && version_ge "$have" "$minimum"; then return 0; fi
  local stamp="node $NODE_VERSION npm $NPM_VERSION"
  if [ "$(cat "$NODE_HOME/.installed" 2>/dev/null || true)" = "$stamp" ]; then
    export PATH="$NODE_HOME/bin:$PATH"
    return 0
  fi
  command -v npm >/dev/null || { say "Node.js $minimum or newer is needed (found: ${have:-none}, and no npm to fetch one)"; return 1; }
  local os arch
  case "$(uname -s)" in Linux) os=linux ;; Darwin) os=darwin ;; *) say "no Node.js binary package for $(uname -s)"; return 1 ;; esac
  case "$(uname -m)" in x86_64|amd64) arch=x64 ;; aarch64|arm64) arch=arm64 ;; *) say "no Node.js binary package for $(uname -m)"; return 1 ;; esac
  # One install at a time (parallel scripts share .tools); re-checked once the lock is held.
  mkdir -p "$ROOT/.tools"
  (
    flock 8
    [ "$(cat "$NODE_HOME/.installed" 2>/dev/null || true)" = "$stamp" ] && exit 0
    say "installing Node.js $NODE_VERSION and npm $NPM_VERSION into .tools/node (system Node: ${have:-none}, minimum $minimum)"
    local tmp
    tmp="$(mktemp -d "$ROOT/.tools/node.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    ( cd "$tmp" && npm pack --silent --no-audit --no-fund "node-$os-$arch@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null )
    mkdir -p "$tmp/node/lib/node_modules/npm"
    tar -xzf "$tmp/node-$os-$arch-$NODE_VERSION.tgz" -C "$tmp/node" --strip-components=1
    tar -xzf "$tmp/npm-$NPM_VERSION.tgz" -C "$tmp/node/lib/node_modules/npm" --strip-components=1
    ln -s ../lib/node_modules/npm/bin/npm-cli.js "$tmp/node/bin/npm"
    ln -s ../lib/node_modules/npm/bin/npx-cli.js "$tmp/node/bin/npx"
    [ "$("$tmp/node/bin/node" --version)" = "v$NODE_VERSION" ]
    echo "$stamp" > "$tmp/node/.installed"
    rm -rf "$NODE_HOME"
    mv "$tmp/node" "$NODE_HOME"
  ) 8> "$ROOT/.tools/.install.lock"
  export PATH="$NODE_HOME/bin:$PATH"
  installed=1
}

# Installs what is missing, and nothing when everything is there (a few hundred ms).
ensure_toolchain() {
  local installed=0
  ensure_node
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    say "adding the wasm32-unknown-unknown target"; rustup target add wasm32-unknown-unknown; installed=1
  fi
  [ -f Cargo.lock ] || cargo generate-lockfile
  local want have
  want="$(lock_version wasm-bindgen)"
  have="$("$CARGO_BIN/wasm-bindgen" --version 2>/dev/null | awk '{print $2}' || true)"
  if [ "$have" != "$want" ]; then
    # `--locked` cannot resolve here (see README); a plain install of the exact version works.
    say "installing wasm-bindgen-cli $want (found: ${have:-none})"
    cargo install wasm-bindgen-cli --version "=$want" --force; installed=1
  fi
  want="$(lock_version worker-build || true)"
  [ -n "$want" ] || want="$(lock_version worker)"
  have="$("$CARGO_BIN/worker-build" --version 2>/dev/null || true)"
  if [ "$have" != "$want" ]; then
    say "installing worker-build $want (found: ${have:-none})"
    cargo install worker-build --version "=$want" --force; installed=1
  fi
  local lock_hash
  lock_hash="$(sha256sum package-lock.json | cut -d' ' -f1)"
  if [ "$(cat node_modules/.lock-hash 2>/dev/null || true)" != "$lock_hash" ]; then
    # One npm ci at a time (parallel builds share node_modules); the stamp is written only
    # after a successful install, and re-checked once the lock is held.
    (
      flock 9
      if [ "$(cat node_modules/.lock-hash 2>/dev/null || true)" != "$lock_hash" ]; then
        say "installing npm packages from package-lock.json"
        rm -f node_modules/.lock-hash
        npm ci --no-audit --no-fund --loglevel=error
        echo "$lock_hash" > node_modules/.lock-hash
      fi
    ) 9> "$ROOT/.npm-install.lock"
    installed=1
  fi
  if [ "$installed" = 0 ]; then say "toolchain: everything already installed"; fi
}

# Builds the workers: one cargo invocation for all wasm crates (so cargo can share and
# parallelise work), then worker-build's bindgen/opt/bundle step per crate.
# ONLY="db api" builds a subset; PROFILE=dev builds unoptimised (fast to compile, for iterating).
build_workers() {
  local selected=(${ONLY:-${WORKERS[@]}}) profile="${PROFILE:-release}"
  local packages=() cargo_flags=() wb_flags=(--release)
  for w in "${selected[@]}"; do packages+=(-p "${PACKAGE[$w]}"); done
  if [ "$profile" = dev ]; then wb_flags=(--dev); else cargo_flags=(--release); fi
  say "compiling ${selected[*]} to wasm ($profile)"
  # worker-build sets this for its own cargo run; matching it keeps that run a no-op.
  WASM_BINDGEN_USE_JS_SYS=1 cargo build "${cargo_flags[@]}" --lib --target wasm32-unknown-unknown "${packages[@]}"
  export WASM_BINDGEN_BIN="$CARGO_BIN/wasm-bindgen"
  export WASM_OPT_BIN="$ROOT/node_modules/.bin/wasm-opt"
  export ESBUILD_BIN="$ROOT/node_modules/@esbuild/linux-x64/bin/esbuild"
  mkdir -p "$ROOT/target"
  local pids=()
  for w in "${selected[@]}"; do
    ( cd "crates/$w" && "$CARGO_BIN/worker-build" "${wb_flags[@]}" > "$ROOT/target/worker-build-$w.log" 2>&1 ) &
    pids+=($!)
  done
  local failed=0 i=0
  for pid in "${pids[@]}"; do
    if ! wait "$pid"; then failed=1; say "worker-build failed for ${selected[$i]}:"; cat "$ROOT/target/worker-build-${selected[$i]}.log" >&2; fi
    i=$((i + 1))
  done
  [ "$failed" = 0 ] || return 1
  # worker-build keeps wasm's names section whatever wasm-opt is told: a release build drops it
  # (scripts/strip-wasm-names.mjs); a dev build keeps it for readable stack traces.
  if [ "$profile" != dev ]; then
    local wasm=()
    for w in "${selected[@]}"; do wasm+=("crates/$w/build/index_bg.wasm"); done
    node "$ROOT/scripts/strip-wasm-names.mjs" "${wasm[@]}" > /dev/null || return 1
  fi
  say "built: ${selected[*]}"
}

# wrk (Debian package), for scripts/bench and the bench smoke step of scripts/test.
ensure_wrk() {
  command -v wrk >/dev/null && return 0
  say "installing wrk (Debian package)"
  local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq wrk >/dev/null
}
