//! espace-ps integration tests: one test binary, the real `espace-ps` binary
//! and the real peers started by `./scripts/test.sh`.

mod it;
