use super::*;
use crate::identity::{LoginMethod, NationalId};
use async_trait::async_trait;

fn pro() -> Professional {
    Professional::new(
        NationalId::parse("0123456789").unwrap(),
        "A".into(),
        "B".into(),
        LoginMethod::PscCard,
    )
}

fn sessions(idle: u64, absolute: u64) -> Sessions {
    Sessions::new(
        Arc::new(MemoryStore::default()),
        "t:",
        Duration::from_secs(idle),
        Duration::from_secs(absolute),
    )
}

#[tokio::test]
async fn new_id_each_login_and_destroy() {
    let s = sessions(60, 600);
    let (a, _) = s.create(pro(), 1, None).await.unwrap();
    let (b, _) = s.create(pro(), 1, None).await.unwrap();
    assert_ne!(a, b);
    assert_eq!(a.len(), 43);
    assert!(s.load(&a).await.unwrap().is_some());
    s.destroy(&a).await.unwrap();
    assert!(s.load(&a).await.unwrap().is_none());
    assert!(s.load(&b).await.unwrap().is_some());
    assert!(s.load("short").await.unwrap().is_none());
}

/// A session whose stored record was changed by `age`, as if time passed.
async fn aged(age: impl FnOnce(&mut SessionData)) -> (Sessions, String) {
    let s = sessions(60, 600);
    let (id, mut data) = s.create(pro(), 1, None).await.unwrap();
    age(&mut data);
    let key = s.key("s", &id);
    s.store
        .set(&key, &Sessions::encode(&data), Duration::from_secs(60))
        .await
        .unwrap();
    (s, id)
}

#[tokio::test]
async fn absolute_lifetime_ends_a_session() {
    let (s, id) = aged(|d| d.created_at -= 601).await;
    assert!(s.load(&id).await.unwrap().is_none());
    let (s, id) = aged(|d| d.created_at -= 599).await;
    assert!(s.load(&id).await.unwrap().is_some());
}

#[tokio::test]
async fn idle_timeout_ends_a_session() {
    let (s, id) = aged(|d| d.last_seen -= 61).await;
    assert!(s.load(&id).await.unwrap().is_none());
    let (s, id) = aged(|d| d.last_seen -= 59).await;
    assert!(s.load(&id).await.unwrap().is_some());
}

/// The logout race: a request that loaded the session before the
/// logout must not write it back after.
#[tokio::test]
async fn a_destroyed_session_is_not_resurrected_by_a_late_write() {
    let s = sessions(60, 600);
    let (id, _) = s.create(pro(), 1, None).await.unwrap();
    let mut loaded = s.load(&id).await.unwrap().unwrap();
    s.destroy(&id).await.unwrap();
    loaded.recent_patients.push(RecentPatient {
        id: "p".into(),
        sex: "F".into(),
        family_name: "X".into(),
        given_name: "Y".into(),
        birth_date: "01/01/1970".into(),
        dossier: None,
    });
    assert!(!s.update(&id, &loaded).await.unwrap());
    assert!(s.load(&id).await.unwrap().is_none());
}

/// The same race on the touch that `load` makes every 30 seconds.
#[tokio::test]
async fn the_touch_of_load_does_not_resurrect_a_session() {
    let s = sessions(60, 600);
    let (id, mut data) = s.create(pro(), 1, None).await.unwrap();
    data.last_seen -= TOUCH_EVERY + 1;
    let key = s.key("s", &id);
    // A store that loses the key between the read and the write of `load`.
    struct DelAfterGet(MemoryStore);
    #[async_trait]
    impl KvStore for DelAfterGet {
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            let v = self.0.get(key).await?;
            self.0.del(key).await?;
            Ok(v)
        }
        async fn set(&self, k: &str, v: &[u8], t: Duration) -> Result<(), StoreError> {
            self.0.set(k, v, t).await
        }
        async fn del(&self, k: &str) -> Result<(), StoreError> {
            self.0.del(k).await
        }
        async fn take(&self, k: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.0.take(k).await
        }
        async fn set_nx(&self, k: &str, t: Duration) -> Result<bool, StoreError> {
            self.0.set_nx(k, t).await
        }
        async fn set_xx(&self, k: &str, v: &[u8], t: Duration) -> Result<bool, StoreError> {
            self.0.set_xx(k, v, t).await
        }
        async fn set_add(&self, k: &str, m: &str, t: Duration) -> Result<(), StoreError> {
            self.0.set_add(k, m, t).await
        }
        async fn set_remove(&self, k: &str, m: &str) -> Result<(), StoreError> {
            self.0.set_remove(k, m).await
        }
        async fn set_members(&self, k: &str) -> Result<Vec<String>, StoreError> {
            self.0.set_members(k).await
        }
        async fn incr_window(&self, k: &str, w: Duration) -> Result<u64, StoreError> {
            self.0.incr_window(k, w).await
        }
        async fn ping(&self) -> Result<(), StoreError> {
            Ok(())
        }
    }
    let store = Arc::new(DelAfterGet(MemoryStore::default()));
    store
        .0
        .set(&key, &Sessions::encode(&data), Duration::from_secs(60))
        .await
        .unwrap();
    let racy = Sessions::new(
        store.clone(),
        "t:",
        Duration::from_secs(60),
        Duration::from_secs(600),
    );
    assert!(racy.load(&id).await.unwrap().is_none());
    assert!(store.0.get(&key).await.unwrap().is_none(), "written back");
}

#[tokio::test]
async fn revoke_ends_every_session_of_one_professional() {
    let s = sessions(60, 600);
    let (a, _) = s.create(pro(), 1, None).await.unwrap();
    let (b, _) = s.create(pro(), 1, None).await.unwrap();
    let other = Professional::new(
        NationalId::parse("0987654321").unwrap(),
        "C".into(),
        "D".into(),
        LoginMethod::PscCard,
    );
    let (c, _) = s.create(other, 2, None).await.unwrap();
    s.destroy(&b).await.unwrap();
    assert_eq!(s.revoke_national_id("0123456789").await.unwrap(), 1);
    assert!(s.load(&a).await.unwrap().is_none());
    assert!(s.load(&c).await.unwrap().is_some());
    assert_eq!(s.revoke_national_id("0123456789").await.unwrap(), 0);
}

#[tokio::test]
async fn flows_and_jti_are_single_use() {
    let s = sessions(60, 600);
    let flow = LoginFlow {
        state: "st".into(),
        nonce: "n".into(),
        pkce_verifier: "v".into(),
        return_to: "/".into(),
    };
    let id = s.put_flow(&flow).await.unwrap();
    assert_eq!(s.take_flow(&id).await.unwrap().unwrap().state, "st");
    assert!(s.take_flow(&id).await.unwrap().is_none());
    assert!(s
        .claim_once("hm", "jti-1", Duration::from_secs(5))
        .await
        .unwrap());
    assert!(!s
        .claim_once("hm", "jti-1", Duration::from_secs(5))
        .await
        .unwrap());
}

#[test]
fn digest_is_lowercase_hex_sha256() {
    assert_eq!(
        digest("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(&*super::digest_shared("abc"), digest("abc"));
}

#[test]
fn store_keys_do_not_contain_the_cookie() {
    let s = sessions(60, 600);
    let id = new_token();
    let key = s.key("s", &id);
    assert!(!key.contains(&id));
    assert!(key.starts_with("t:s:"));
}

/// Two instances share one store: what one writes, the other reads at its
/// next load, even though it had decoded the session before (the decoded
/// cache is keyed by the exact stored bytes, never trusted alone).
#[tokio::test]
async fn a_session_changed_by_another_instance_is_read_fresh() {
    let store: Arc<dyn KvStore> = Arc::new(MemoryStore::default());
    let new = || {
        Sessions::new(
            store.clone(),
            "t:",
            Duration::from_secs(60),
            Duration::from_secs(600),
        )
    };
    let (a, b) = (new(), new());
    let (id, mut data) = a.create(pro(), 1, None).await.unwrap();
    assert!(a
        .load(&id)
        .await
        .unwrap()
        .unwrap()
        .recent_patients
        .is_empty());
    data.recent_patients.push(RecentPatient {
        id: "P1".into(),
        sex: "F".into(),
        family_name: "X".into(),
        given_name: "Y".into(),
        birth_date: "01/01/1970".into(),
        dossier: None,
    });
    assert!(b.update(&id, &data).await.unwrap());
    let seen = a.load(&id).await.unwrap().unwrap();
    assert_eq!(seen.recent_patients, data.recent_patients);
    // Ended on the other instance: gone here too, decoded or not.
    b.destroy(&id).await.unwrap();
    assert!(a.load(&id).await.unwrap().is_none());
}

/// A corrupt record is refused even when the same key decoded fine before.
#[tokio::test]
async fn a_corrupted_record_is_an_error_not_the_old_value() {
    let s = sessions(60, 600);
    let (id, _) = s.create(pro(), 1, None).await.unwrap();
    assert!(s.load(&id).await.unwrap().is_some());
    s.store
        .set(&s.key("s", &id), b"{not json", Duration::from_secs(60))
        .await
        .unwrap();
    assert!(matches!(s.load(&id).await, Err(StoreError::Corrupt(_))));
}

/// An expired entry is absent to every reader, and a conditional write
/// sees it absent too (a time to live of zero: expired as soon as written).
#[tokio::test]
async fn memory_store_entries_are_absent_once_expired() {
    let store = MemoryStore::default();
    store.set("p:s:gone", b"v", Duration::ZERO).await.unwrap();
    store
        .set("p:s:kept", b"v", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(store.get("p:s:gone").await.unwrap(), None);
    assert_eq!(store.take("p:s:gone").await.unwrap(), None);
    store.set("p:s:gone", b"v", Duration::ZERO).await.unwrap();
    assert!(!store
        .set_xx("p:s:gone", b"w", Duration::from_secs(60))
        .await
        .unwrap());
    assert_eq!(store.get("p:s:gone").await.unwrap(), None);
    assert_eq!(store.count_prefix("p:s:").await.unwrap(), 1);
    assert!(store
        .set_nx("p:s:gone", Duration::from_secs(60))
        .await
        .unwrap());
    assert_eq!(store.get("p:s:gone").await.unwrap(), Some(Vec::new()));
    assert_eq!(store.get("p:s:kept").await.unwrap(), Some(b"v".to_vec()));
}
