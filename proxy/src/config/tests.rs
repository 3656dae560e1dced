use super::*;

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
    assert!(c.database_url.starts_with("sqlite:"));
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

#[test]
fn hm_sso_refuses_symmetric_algorithms() {
    let i = issues("[hm_sso]\nissuer = \"hm\"\naudience = \"espace\"\nalgorithms = [\"HS256\"]\njwks_url = \"https://hm.example/jwks\"\n");
    assert_eq!(i[0].key, "hm_sso.algorithms");
}

#[test]
fn moved_clock_is_read_named_in_the_summary_and_bounded() {
    let c = Config::from_toml("[testing]\nclock_offset_secs = -86400\n", no_env).unwrap();
    assert_eq!(c.clock_offset, Some(time::Duration::days(-1)));
    assert!(
        c.summary().contains("CLOCK MOVED by -86400 s"),
        "{}",
        c.summary()
    );
    assert!(Config::defaults().clock_offset.is_none());
    let i = issues("[testing]\nclock_offset_secs = 9000000000\n");
    assert_eq!(i[0].key, "testing.clock_offset_secs");
    assert_eq!(i[0].line, Some(2));
}
