//! espace-ps integration tests: one test binary, the real `espace-ps` binary
//! and the real peers (Redis, PostgreSQL, the OpenID provider behind nginx),
//! started once per test run by `espace_ps_testenv` (see `it::harness::peer`).

mod it;
