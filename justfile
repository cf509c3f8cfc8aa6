# The everyday commands; each is a thin wrapper over cargo (README gives the plain commands).

# Replay a recorded company through the whole service
demo:
    cargo run --bin jmotto-zoom -- demo

# Every test (unit + the integration binary), offline
test:
    cargo test --all-targets

# Formatting and lints as CI checks them
lint:
    cargo fmt --check
    cargo clippy --all-targets -- -D warnings
    cargo clippy --test kill-test -- -D warnings
    cargo clippy --test kill-test-pg -- -D warnings

# SIGKILL the worker process 20+ times during a 200-meeting sync; fails on any lost or
# duplicated meeting (tests/kill_test.rs; a debug build, about a minute)
kill-test:
    cargo test --test kill-test

# The same on a throw-away PostgreSQL of its own: two servers and three workers on one
# database, a random worker SIGKILLed 50+ times during a 560-meeting sync and PostgreSQL
# restarted once; fails on any lost or duplicated meeting, a process that exits by itself or
# a second with more creates than create_per_second (tests/kill_test_pg.rs; debug build, a
# few minutes; needs PostgreSQL under /usr/lib/postgresql)
kill-test-pg:
    cargo test --test kill-test-pg

# The admin console in Debian's Chromium (tests/browser_suite.rs + tests/browser/console.spec.mjs):
# the seed's whole setup against the replays, with the console's security checks; screenshots of
# every page in target/browser-screenshots/. Needs node 20 and /usr/bin/chromium (CHROMIUM_PATH
# to use another); runs `npm ci` in tests/browser when its node_modules is missing.
# JMZ_BROWSER_DOC_SCREENSHOTS=1 also refreshes docs/screenshots/status.png and users.png.
browser-test:
    cargo test --test browser

# Every benchmark figure beside its limit, in one run (release build; BENCHMARKS.md).
# SQLite and PostgreSQL; BENCH_SCALE=0.05 scales the entry counts down for a quick look.
bench:
    cargo bench --bench bench

# What CI runs
ci:
    bash .ci/run

# Schema-driven fuzzing of the HTTP API: schemathesis (PyPI) against `demo --serve`, every
# check: fails on any 5xx, any answer the OpenAPI document does not allow, a request the
# document allows that the server refuses or one it forbids that the server accepts, a
# missing auth that is not refused, a wrong method not answered 405. FUZZ_SEED picks the run.
# `POST /webhooks/groupware` needs a Standard Webhooks signature the fuzzer cannot make: it
# is fuzzed too, but answers it 401 only (schemathesis warns "Authentication failed").
fuzz-api:
    #!/usr/bin/env bash
    set -euo pipefail
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
        "schemathesis==4.32.5" "openapi-spec-validator==0.9.0"
    cargo build --bin jmotto-zoom
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    log=$(mktemp)
    ./target/debug/jmotto-zoom demo --serve --listen "127.0.0.1:$port" >"$log" 2>&1 &
    server=$!
    trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -f "$log"' EXIT
    for _ in $(seq 1 600); do
        grep -q "Serving until" "$log" && break
        kill -0 $server 2>/dev/null || { cat "$log"; exit 1; }
        sleep 0.2
    done
    spec=$(mktemp --suffix=.json)
    python3 -c 'import sys, urllib.request; open(sys.argv[2], "wb").write(urllib.request.urlopen(sys.argv[1]).read())' \
        "http://127.0.0.1:$port/api/openapi.json" "$spec"
    openapi-spec-validator "$spec"
    schemathesis run "http://127.0.0.1:$port/api/openapi.json" \
        --checks all \
        --header "Authorization: Bearer demo-admin-token" \
        --max-examples 50 --seed "${FUZZ_SEED:-1}" --no-color
