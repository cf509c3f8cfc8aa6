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

# SIGKILL the worker process 20+ times during a 200-meeting sync; fails on any lost or
# duplicated meeting (tests/kill_test.rs; a debug build, about a minute)
kill-test:
    cargo test --test kill-test

# What CI runs
ci:
    bash .ci/run
