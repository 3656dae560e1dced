use super::*;

mod stores;

fn no_env(_: &str) -> Option<String> {
    None
}

fn issues(text: &str) -> Vec<ConfigIssue> {
    match Config::from_toml(text, no_env) {
        Err(ConfigError::Invalid(i)) => i,
        other => panic!("expected invalid configuration, got {other:?}"),
    }
}

#[test]
fn empty_file_gives_single_instance_defaults() {
    let c = Config::defaults();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert!(matches!(c.sessions.store, SessionStoreConfig::Memory));
    assert!(c.database.url.starts_with("sqlite:"));
    assert_eq!(c.sessions.idle_timeout, Duration::from_secs(1800));
    assert_eq!(c.sessions.absolute_timeout, Duration::from_secs(4 * 3600));
    assert!(c.summary().starts_with("ok: "));
}

#[test]
fn unknown_key_is_named_with_its_line() {
    let i = issues("[server]\nlisten = \"127.0.0.1:1\"\nlistne = \"x\"\n");
    assert_eq!(i[0].key, "listne");
    assert_eq!(i[0].line, Some(3));
}

#[test]
fn semantic_errors_are_all_collected_with_lines() {
    let text = "[server]\nlisten = \"nope\"\n\n[sessions]\nstore = \"redis\"\n";
    let i = issues(text);
    let keys: Vec<_> = i.iter().map(|i| (i.key.as_str(), i.line)).collect();
    assert!(keys.contains(&("server.listen", Some(2))), "{keys:?}");
    assert!(keys.contains(&("sessions.redis_url", None)), "{keys:?}");
}

#[test]
fn psc_defaults_follow_pro_sante_connect() {
    let c = Config::from_toml(
        "[psc]\nissuer = \"https://auth.bas.psc.esante.gouv.fr/auth/realms/esante-wallet\"\nclient_id = \"c\"\nclient_secret = \"s\"\n",
        no_env,
    )
    .unwrap();
    let p = c.psc.unwrap();
    assert_eq!(
        p.discovery_url.as_str(),
        "https://auth.bas.psc.esante.gouv.fr/auth/realms/esante-wallet/.well-known/wallet-openid-configuration"
    );
    assert_eq!(p.scopes, vec!["openid", "scope_all"]);
    assert_eq!(p.acr_values, "eidas1");
    assert_eq!(p.required_acr, vec!["eidas1"]);
    assert_eq!(p.client_auth, ClientAuth::ClientSecretBasic);
    assert_eq!(
        p.redirect_uri.as_str(),
        "http://127.0.0.1:8080/auth/callback"
    );
    assert!(!p.dev_idp);
}

#[test]
fn secret_comes_from_environment() {
    let text = "[psc]\nissuer = \"https://idp.example/x\"\nclient_id = \"c\"\n";
    assert_eq!(issues(text)[0].key, "psc.client_secret");
    let env = |k: &str| (k == ENV_PSC_CLIENT_SECRET).then(|| "from-env".to_owned());
    let c = Config::from_toml(text, env).unwrap();
    assert_eq!(c.psc.unwrap().client_secret.as_deref(), Some("from-env"));
}

#[test]
fn mtls_needs_certificate_and_key() {
    let text = "[psc]\nissuer = \"https://idp.example/x\"\nclient_id = \"c\"\nclient_auth = \"tls_client_auth\"\n";
    let keys: Vec<_> = issues(text).into_iter().map(|i| i.key).collect();
    assert_eq!(keys, vec!["psc.tls_client_cert", "psc.tls_client_key"]);
}

#[test]
fn plain_http_is_refused_off_loopback() {
    let i = issues("[server]\npublic_url = \"http://portail.example.fr\"\n");
    assert_eq!(i[0].key, "server.public_url");
    assert_eq!(i[0].line, Some(2));
    assert!(Config::from_toml(
        "[server]\npublic_url = \"https://portail.example.fr\"\n",
        no_env
    )
    .is_ok());
}

#[test]
fn trusted_gateway_networks() {
    let net = parse_ip_net("10.1.0.0/16").unwrap();
    assert!(net.contains(&"10.1.200.3".parse::<IpAddr>().unwrap()));
    assert!(!net.contains(&"10.2.0.1".parse::<IpAddr>().unwrap()));
    assert!(!net.contains(&"::1".parse::<IpAddr>().unwrap()));
    assert!(parse_ip_net("10.0.0.0/33").is_none());
    assert!(parse_ip_net("::1")
        .unwrap()
        .contains(&"::1".parse::<IpAddr>().unwrap()));
    // A single IPv4 address is a /32.
    assert_eq!(
        parse_ip_net("192.0.2.7").unwrap(),
        "192.0.2.7/32".parse::<IpNet>().unwrap()
    );
    // An IPv4-mapped IPv6 network is the IPv4 network it maps.
    assert_eq!(
        parse_ip_net("::ffff:10.0.0.0/104").unwrap(),
        "10.0.0.0/8".parse::<IpNet>().unwrap()
    );
    assert_eq!(
        issues("[server]\ntrusted_gateways = [\"bad\"]\n")[0].key,
        "server.trusted_gateways"
    );
}

#[test]
fn psc_userinfo_algs_default_to_the_id_token_algs() {
    let base =
        "[psc]\nissuer = \"https://idp.example/x\"\nclient_id = \"c\"\nclient_secret = \"s\"\n";
    let c = Config::from_toml(&format!("{base}id_token_algs = [\"HS256\"]\n"), no_env).unwrap();
    let psc = c.psc.unwrap();
    assert_eq!(psc.id_token_algs, vec![IdTokenAlg::Hs256]);
    assert_eq!(psc.userinfo_algs, vec![IdTokenAlg::Hs256]);
    let c = Config::from_toml(
        &format!("{base}id_token_algs = [\"HS256\"]\nuserinfo_algs = [\"RS256\"]\n"),
        no_env,
    )
    .unwrap();
    let psc = c.psc.unwrap();
    assert_eq!(psc.id_token_algs, vec![IdTokenAlg::Hs256]);
    assert_eq!(psc.userinfo_algs, vec![IdTokenAlg::Rs256]);
    let i = issues(&format!("{base}userinfo_algs = [\"none\"]\n"));
    assert_eq!(i[0].key, "psc.userinfo_algs");
    assert_eq!(i[0].line, Some(5));
    let i = issues(&format!("{base}userinfo_algs = []\n"));
    assert_eq!(i[0].key, "psc.userinfo_algs");
}

#[test]
fn hm_sso_allowed_origins_are_origins() {
    let base = "[hm_sso]\nissuer = \"hm\"\naudience = \"espace\"\njwks_url = \"https://hm.example/jwks\"\n";
    let c = Config::from_toml(
        &format!(
            "{base}allowed_origins = [\"https://HM.chu.example/\", \"https://hm2.chu.example:8443\", \"http://hm.chu.example:443\"]\n"
        ),
        no_env,
    )
    .unwrap();
    assert_eq!(
        c.hm_sso.unwrap().allowed_origins,
        vec![
            "https://hm.chu.example",
            "https://hm2.chu.example:8443",
            "http://hm.chu.example:443"
        ]
    );
    assert!(Config::from_toml(base, no_env)
        .unwrap()
        .hm_sso
        .unwrap()
        .allowed_origins
        .is_empty());
    for bad in [
        "https://hm.chu.example/launch",
        "https://hm.chu.example/?x=1",
        "https://user@hm.chu.example",
        "hm.chu.example",
        "*",
        "null",
        "ftp://hm.chu.example",
    ] {
        let i = issues(&format!("{base}allowed_origins = [\"{bad}\"]\n"));
        assert_eq!(i[0].key, "hm_sso.allowed_origins", "{bad}");
        assert_eq!(i[0].line, Some(5), "{bad}");
    }
}

/// The demo's Hopital Manager simulator key (its private half is in the
/// repository) is refused as a trusted PEM key, whatever the file's name.
#[test]
fn hm_sso_refuses_the_demo_simulator_key() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("hm.pub.pem");
    std::fs::write(
        &demo,
        include_str!("../../../devidp/src/hm_sim_key.pub.pem").replace('\n', "\r\n"),
    )
    .unwrap();
    let other =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys/hm-es256.pub.pem");
    let base = "[hm_sso]\nissuer = \"hm\"\naudience = \"espace\"\n";
    let i = issues(&format!(
        "{base}public_keys = [\"{}\", \"{}\"]\n",
        other.display(),
        demo.display()
    ));
    assert_eq!(i.len(), 1, "{i:?}");
    assert_eq!(i[0].key, "hm_sso.public_keys");
    assert!(
        i[0].message.contains("demo's Hopital Manager simulator"),
        "{i:?}"
    );
    Config::from_toml(
        &format!("{base}public_keys = [\"{}\"]\n", other.display()),
        no_env,
    )
    .unwrap();
}

#[test]
fn hm_sso_refuses_symmetric_algorithms() {
    let i = issues("[hm_sso]\nissuer = \"hm\"\naudience = \"espace\"\nalgorithms = [\"HS256\"]\njwks_url = \"https://hm.example/jwks\"\n");
    assert_eq!(i[0].key, "hm_sso.algorithms");
}

#[test]
fn moved_clock_is_read_named_in_the_summary_and_bounded() {
    let c = Config::from_toml("[testing]\nclock_offset_secs = -86400\n", no_env).unwrap();
    assert_eq!(c.testing.clock_offset, Some(time::Duration::days(-1)));
    assert!(
        c.summary().contains("CLOCK MOVED by -86400 s"),
        "{}",
        c.summary()
    );
    assert!(Config::defaults().testing.clock_offset.is_none());
    let i = issues("[testing]\nclock_offset_secs = 9000000000\n");
    assert_eq!(i[0].key, "testing.clock_offset_secs");
    assert_eq!(i[0].line, Some(2));
}

#[test]
fn values_outside_their_set_are_named_with_key_and_line() {
    for (text, key, line) in [
        ("[logging]\nformat = \"xml\"\n", "logging.format", 2),
        (
            "[server]\nlisten = \"127.0.0.1:1\"\n\n[sessions]\nstore = \"memcached\"\n",
            "sessions.store",
            5,
        ),
        (
            "[psc]\nissuer = \"https://idp.example/x\"\nclient_id = \"c\"\nclient_auth = \"private_key_jwt\"\n",
            "psc.client_auth",
            4,
        ),
        (
            "[psc]\nissuer = \"https://idp.example/x\"\nclient_id = \"c\"\nclient_secret = \"s\"\nid_token_algs = [\"RS256\",\n  \"none\"]\n",
            "psc.id_token_algs",
            6,
        ),
        // A value of the wrong type is named by its key too.
        ("\n[portal]\nunseen_days = \"30\"\n", "portal.unseen_days", 3),
        ("[rate_limit]\nrecord_views_per_minute = -1\n", "rate_limit.record_views_per_minute", 2),
        ("[psc]\nclient_id = \"c\"\n", "psc", 1),
    ] {
        let i = issues(text);
        assert_eq!(i.len(), 1, "{text}: {i:?}");
        assert_eq!((i[0].key.as_str(), i[0].line), (key, Some(line)), "{text}: {i:?}");
    }
    // The message says what the set is.
    let i = issues("[logging]\nformat = \"xml\"\n");
    assert!(
        i[0].message.contains("`text`") && i[0].message.contains("`json`"),
        "{i:?}"
    );
}

#[test]
fn a_problem_with_a_default_value_has_no_line() {
    // The idle timeout is at its default (1800 s), above this absolute one.
    let i = issues("[sessions]\nabsolute_timeout_secs = 60\n");
    assert_eq!(i[0].key, "sessions.idle_timeout_secs");
    assert_eq!(i[0].line, None);
    let i = issues("[sessions]\nidle_timeout_secs = 600\nabsolute_timeout_secs = 60\n");
    assert_eq!(i[0].line, Some(2));
}

#[test]
fn the_validated_configuration_is_nested_as_the_file_is() {
    let c = Config::defaults();
    assert_eq!(c.database.max_connections, 8);
    assert_eq!(c.records.url, None);
    assert_eq!(c.records.max_connections, 8);
    assert_eq!(c.policies.dir, PathBuf::from("policies"));
    assert_eq!(c.portal.pages_dir, None);
    assert_eq!(c.rate_limit.login_per_minute, 30);
    assert_eq!(
        c.rate_limit.lookups,
        LookupLimits {
            dossier_submit_per_account: 20,
            dossier_submit_per_address: 60,
            record_views_per_account: 120,
            record_views_per_address: 600,
        }
    );
    assert_eq!(c.logging.format, LogFormat::Text);
    assert_eq!(c.upstream.viewer, "orthanc");

    let text = "[database]\nurl = \"sqlite://a.sqlite\"\nmax_connections = 3\n\
                [records]\nurl = \"sqlite://r.sqlite?mode=ro\"\nmax_connections = 2\n\
                [portal]\npages_dir = \"branding\"\nsearch_limit = 5\n\
                [rate_limit]\nlogin_per_minute = 7\nrecord_views_per_minute_per_address = 9\n\
                [policies]\ndir = \"/etc/p\"\n";
    let c = Config::from_toml(text, no_env).unwrap();
    assert_eq!(c.database.url, "sqlite://a.sqlite");
    assert_eq!(c.database.max_connections, 3);
    assert_eq!(c.records.url.as_deref(), Some("sqlite://r.sqlite?mode=ro"));
    assert_eq!(c.records.max_connections, 2);
    assert_eq!(c.portal.pages_dir, Some(PathBuf::from("branding")));
    assert_eq!(c.portal.search_limit, 5);
    assert_eq!(c.portal.unseen_days, 30);
    assert_eq!(c.portal.support_contact, None);
    assert_eq!(c.rate_limit.login_per_minute, 7);
    assert_eq!(c.rate_limit.lookups.record_views_per_address, 9);
    assert_eq!(c.rate_limit.lookups.record_views_per_account, 120);
    assert_eq!(c.policies.dir, PathBuf::from("/etc/p"));

    // The environment overrides the file's connection strings.
    let env = |k: &str| match k {
        ENV_DATABASE_URL => Some("postgres://db/espace".to_owned()),
        ENV_RECORDS_URL => Some("postgres://db/records".to_owned()),
        _ => None,
    };
    let c = Config::from_toml(text, env).unwrap();
    assert_eq!(c.database.url, "postgres://db/espace");
    assert_eq!(c.records.url.as_deref(), Some("postgres://db/records"));
    let i = issues("[records]\nurl = \"mysql://x\"\n");
    assert_eq!((i[0].key.as_str(), i[0].line), ("records.url", Some(2)));
}

#[test]
fn every_key_of_the_example_file_is_read() {
    let text = include_str!("../../../../deploy/espace-ps.example.toml");
    let env = |k: &str| (k == ENV_PSC_CLIENT_SECRET).then(|| "s".to_owned());
    let c = Config::from_toml(text, env).unwrap();
    assert_eq!(c.server.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(c.server.admin_listen.to_string(), "127.0.0.1:9090");
    assert_eq!(c.server.public_origin(), "https://espace-ps.chu-exemple.fr");
    assert_eq!(c.server.threads, 4);
    assert_eq!(
        c.server.trusted_gateways,
        vec!["10.20.0.0/24".parse::<IpNet>().unwrap()]
    );
    assert_eq!(c.upstream.address, "10.20.1.15:8042");
    assert!(!c.upstream.tls);
    let psc = c.psc.as_ref().unwrap();
    assert_eq!(psc.client_id, "espace-ps-chu-exemple");
    assert_eq!(psc.client_secret.as_deref(), Some("s"));
    assert_eq!(psc.client_auth, ClientAuth::ClientSecretBasic);
    assert_eq!(psc.id_token_algs, vec![IdTokenAlg::Rs256]);
    assert_eq!(psc.userinfo_algs, vec![IdTokenAlg::Rs256]);
    assert_eq!(psc.http_timeout, Duration::from_secs(10));
    let hm = c.hm_sso.as_ref().unwrap();
    assert_eq!(hm.issuer, "hopital-manager");
    assert_eq!(hm.algorithms, vec![HmAlg::Rs256, HmAlg::Es256]);
    assert_eq!(hm.max_lifetime, Duration::from_secs(300));
    assert_eq!(hm.leeway, Duration::from_secs(30));
    assert_eq!(hm.allowed_origins, vec!["https://hm.chu-exemple.fr"]);
    assert!(
        matches!(&c.sessions.store, SessionStoreConfig::Redis(r) if r.url == "redis://10.20.1.20:6379/0")
    );
    assert_eq!(c.sessions.key_prefix, "espace-ps:");
    assert_eq!(c.sessions.absolute_timeout, Duration::from_secs(14400));
    assert_eq!(
        c.database.url,
        "postgres://espace_ps_app@10.20.1.21/espace_ps"
    );
    assert!(!c.database.migrate && !c.database.allow_audit_rewrite);
    assert_eq!(c.database.max_connections, 16);
    assert_eq!(c.logging.format, LogFormat::Json);
    assert_eq!(c.logging.level, "info");
    assert_eq!(c.rate_limit.login_per_minute, 30);
    assert_eq!(c.policies.dir, PathBuf::from("/etc/espace-ps/policies"));
    assert_eq!(
        c.summary(),
        "ok: listen 0.0.0.0:8080 (public https://espace-ps.chu-exemple.fr), viewer 10.20.1.15:8042, \
         Pro Santé Connect + Hopital Manager SSO, Redis sessions, portal database PostgreSQL"
    );
}

#[test]
fn audit_search_key_and_head_interval() {
    let c = Config::defaults();
    assert!(c.audit.search_key.is_none());
    assert_eq!(c.audit.head_log_interval, Duration::from_secs(300));
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.key");
    std::fs::write(&short, "abc\n").unwrap();
    let i = issues(&format!(
        "[audit]\nsearch_key_file = \"{}\"\nhead_log_interval_secs = 0\n",
        short.display()
    ));
    let keys: Vec<_> = i.iter().map(|i| (i.key.as_str(), i.line)).collect();
    assert_eq!(
        keys,
        [
            ("audit.head_log_interval_secs", Some(3)),
            ("audit.search_key_file", Some(2))
        ]
    );
    let good = dir.path().join("good.key");
    std::fs::write(&good, "0123456789abcdef0123\n").unwrap();
    let text = format!("[audit]\nsearch_key_file = \"{}\"\n", good.display());
    let c = Config::from_toml(&text, no_env).unwrap();
    assert_eq!(
        c.audit.search_key.as_deref(),
        Some(&b"0123456789abcdef0123"[..])
    );
    let env = |k: &str| (k == ENV_AUDIT_SEARCH_KEY).then(|| "from the environment".to_owned());
    let c = Config::from_toml(&text, env).unwrap();
    assert_eq!(
        c.audit.search_key.as_deref(),
        Some(&b"from the environment"[..])
    );
    assert!(!format!("{c:?}").contains("0123456789abcdef"));
}

/// `[portal] support_contact` (issue 11 §6): one line, shown in the login
/// help; empty, multi-line or over 200 characters is refused at its line.
#[test]
fn portal_support_contact() {
    let no_env = |_: &str| None;
    let c = Config::from_toml(
        "[portal]\nsupport_contact = \" Support informatique : 01 23 45 67 89 (poste 4321) \"\n",
        no_env,
    )
    .unwrap();
    assert_eq!(
        c.portal.support_contact.as_deref(),
        Some("Support informatique : 01 23 45 67 89 (poste 4321)")
    );
    for bad in ["\"\"", "\"a\\nb\"", &format!("\"{}\"", "x".repeat(201))] {
        let text = format!("\n[portal]\nsupport_contact = {bad}\n");
        let i = issues(&text);
        assert_eq!(i.len(), 1, "{bad}: {i:?}");
        assert_eq!(
            (i[0].key.as_str(), i[0].line),
            ("portal.support_contact", Some(3)),
            "{bad}: {i:?}"
        );
    }
}

/// `[audit]` retention and shipping (issue 13, items 5 and 6): the keys,
/// each problem named at its line, the checkpoint key never printed.
#[test]
fn audit_retention_and_shipping() {
    let no_env = |_: &str| None;
    let c = Config::defaults();
    assert_eq!(
        (
            c.audit.retention_days,
            c.audit.ship.clone(),
            c.portal.accounts_unused_days
        ),
        (None, None, None)
    );
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("checkpoint.key");
    std::fs::write(&key, "k".repeat(40)).unwrap();
    let text = format!(
        "[audit]\nretention_days = 365\ncheckpoint_key_file = \"{}\"\nship_syslog = \"siem.example:6514\"\nship_queue = 50\n\n[portal]\naccounts_unused_days = 400\n",
        key.display()
    );
    let c = Config::from_toml(&text, no_env).unwrap();
    assert_eq!(c.audit.retention_days, Some(365));
    assert_eq!(c.portal.accounts_unused_days, Some(400));
    assert_eq!(
        c.audit.checkpoint_key.as_deref(),
        Some("k".repeat(40).as_bytes())
    );
    assert!(!format!("{c:?}").contains("kkkk"));
    assert_eq!(
        c.audit.ship,
        Some(ShipConfig {
            target: ShipTarget::Syslog {
                address: "siem.example:6514".into(),
                ca_file: None
            },
            queue: 50
        })
    );
    let env = |k: &str| (k == ENV_AUDIT_CHECKPOINT_KEY).then(|| "from the environment".to_owned());
    let c = Config::from_toml(
        "[audit]\nship_file = \"/var/lib/espace-ps/audit.jsonl\"\n",
        env,
    )
    .unwrap();
    assert_eq!(
        c.audit.checkpoint_key.as_deref(),
        Some(&b"from the environment"[..])
    );
    assert_eq!(
        c.audit.ship.map(|s| s.target),
        Some(ShipTarget::File("/var/lib/espace-ps/audit.jsonl".into()))
    );
    let short = dir.path().join("short.key");
    std::fs::write(&short, "too short").unwrap();
    for (text, key, line) in [
        (
            "[audit]\nretention_days = 0\n".to_owned(),
            "audit.retention_days",
            2,
        ),
        (
            format!("[audit]\ncheckpoint_key_file = \"{}\"\n", short.display()),
            "audit.checkpoint_key_file",
            2,
        ),
        (
            "[audit]\nship_file = \"/x\"\nship_syslog = \"h:514\"\n".to_owned(),
            "audit.ship_syslog",
            3,
        ),
        (
            "[audit]\nship_syslog = \"h\"\n".to_owned(),
            "audit.ship_syslog",
            2,
        ),
        (
            "[audit]\nship_syslog_ca_file = \"/x\"\n".to_owned(),
            "audit.ship_syslog_ca_file",
            2,
        ),
        (
            "[audit]\nship_syslog = \"h:6514\"\nship_syslog_ca_file = \"/nonexistent/ca.pem\"\n"
                .to_owned(),
            "audit.ship_syslog_ca_file",
            3,
        ),
        (
            "[audit]\nship_file = \"/x\"\nship_queue = 0\n".to_owned(),
            "audit.ship_queue",
            3,
        ),
        (
            "[portal]\naccounts_unused_days = 0\n".to_owned(),
            "portal.accounts_unused_days",
            2,
        ),
    ] {
        let i = issues(&text);
        assert_eq!(i.len(), 1, "{text}: {i:?}");
        assert_eq!(
            (i[0].key.as_str(), i[0].line),
            (key, Some(line)),
            "{text}: {i:?}"
        );
    }
}
