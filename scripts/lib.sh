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

# The version of a package as Cargo.lock pins it.
lock_version() {
  awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock
}

# Installs what is missing, and nothing when everything is there (a few hundred ms).
ensure_toolchain() {
  local installed=0
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
  say "built: ${selected[*]}"
}

# wrk (Debian package), for scripts/bench and the bench smoke step of scripts/test.
ensure_wrk() {
  command -v wrk >/dev/null && return 0
  say "installing wrk (Debian package)"
  local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq wrk >/dev/null
}
