//! Per-request cost of the session on a viewer request, with the memory
//! store (`[sessions] store = "memory"`, the viewer benchmark's): `load`
//! (store read, decode, the idle-deadline touch when due) and the digest
//! that keys stores and caches.
//!
//! Run: `cargo bench -p espace-ps --bench session`

use std::sync::Arc;
use std::time::Duration;

use divan::{black_box, Bencher};
use espace_ps::identity::{LoginMethod, NationalId, Professional};
use espace_ps::session::{digest, MemoryStore, Sessions};

/// The allocator of the `espace-ps` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    divan::main();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

/// The viewer benchmark's session: Dr Élise Martin-Dupré by Hopital Manager SSO.
fn professional() -> Professional {
    Professional::new(
        NationalId::parse("899700123450").expect("valid national id"),
        "Élise".into(),
        "Martin-Dupré".into(),
        LoginMethod::HmSso,
    )
}

fn sessions() -> Sessions {
    Sessions::new(
        Arc::new(MemoryStore::default()),
        "espace:",
        Duration::from_secs(1800),
        Duration::from_secs(12 * 3600),
    )
}

/// `Sessions::load` of a live session seen a moment ago (no touch due):
/// what almost every viewer request pays.
#[divan::bench]
fn load_live_session(b: Bencher) {
    let rt = runtime();
    let s = sessions();
    let (id, _) = rt
        .block_on(s.create(professional(), 1, None))
        .expect("create");
    b.bench(|| {
        rt.block_on(s.load(black_box(&id)))
            .expect("store")
            .expect("live")
    });
}

/// The SHA-256 hex digest of a session id.
#[divan::bench]
fn digest_of_an_id(b: Bencher) {
    let id = espace_ps::session::new_token();
    b.bench(|| digest(black_box(&id)));
}
