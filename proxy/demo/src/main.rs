//! The `espace-ps-demo` command: the espace-ps demo on one machine (the
//! real proxy with the dev identity provider, demo records and generated
//! DICOM studies), the demo data alone, or the dev identity provider alone.
//! Never for production: the production binary is `espace-ps`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use espace_ps::config::{Config, LogFormat};
use espace_ps::run::{init_logging, print_error_chain, serve, startup_runtime};
use espace_ps_demo::devidp_server::DevIdpApp;
use espace_ps_devidp::{DevClient, DevIdp, DevIdpConfig, HmSimulatorConfig};

/// The same allocator as the production binary, so the demo runs the proxy
/// as it runs in production.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "espace-ps-demo",
    version,
    about = "The espace-ps demo: the proxy with a dev identity provider and demo data (never for production)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything on this machine with embedded defaults: the dev
    /// identity provider, SQLite, in-memory sessions, the viewer on 127.0.0.1:8042.
    Demo {
        /// Where the portal listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Where the dev identity provider listens.
        #[arg(long, default_value = "127.0.0.1:8081")]
        idp_listen: SocketAddr,
        /// The admin listener (metrics).
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin_listen: SocketAddr,
        /// The viewer upstream (Orthanc in the demo).
        #[arg(long, default_value = "127.0.0.1:8042")]
        viewer: String,
        /// Where the demo keeps its SQLite database.
        #[arg(long, default_value = ".demo")]
        data_dir: PathBuf,
        /// The access policies directory. The demo runs on a copy
        /// (`<data dir>/policies`) with the demo's groups added
        /// (`proxy/demo/demo-groups.toml`); this one is never written to.
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
        /// Run the demo as if it were this instant (RFC 3339, e.g.
        /// 2028-02-29T10:00:00Z): the generated records, the unseen
        /// results, grants and sessions all follow (tests).
        #[arg(long, value_parser = espace_ps::clock::parse_instant)]
        now: Option<time::OffsetDateTime>,
        /// Open the images in OHIF v3 (route table `ohif`, over the
        /// viewer's DICOMweb) served from this directory, installed by
        /// deploy/ohif/install.sh; without it, Orthanc's Web Viewer.
        #[arg(long)]
        ohif_dir: Option<PathBuf>,
    },
    /// Generate the demo records (seeded, reproducible) and load the
    /// matching DICOM studies into an Orthanc viewer.
    DemoData {
        /// The records database to fill (created if missing).
        #[arg(long, default_value = "sqlite://.demo/records.sqlite")]
        records: String,
        #[arg(long, default_value_t = 1961)]
        seed: u64,
        /// Random patients on top of the showcase ones.
        #[arg(long, default_value_t = 2000)]
        patients: u32,
        /// Orthanc's base URL; studies are generated and uploaded there.
        #[arg(long)]
        orthanc: Option<String>,
        /// At most this many studies are uploaded.
        #[arg(long, default_value_t = 400)]
        studies: u32,
        /// Generate the records as if it were this instant (RFC 3339):
        /// pair it with the same instant on the instances that read them
        /// (`[testing] clock_offset_secs`), as loadtest/cluster/run.sh does.
        #[arg(long, value_parser = espace_ps::clock::parse_instant)]
        now: Option<time::OffsetDateTime>,
    },
    /// Run the development identity provider alone (a Pro Santé Connect
    /// look-alike for demos; never for production).
    DevIdp {
        /// Where it listens (loopback unless --allow-remote).
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
        /// Allow a non-loopback listen address.
        #[arg(long)]
        allow_remote: bool,
        /// The client the proxy uses.
        #[arg(long, default_value = "espace-ps-demo")]
        client_id: String,
        /// The client secret (env ESPACE_DEVIDP_CLIENT_SECRET).
        #[arg(long, env = "ESPACE_DEVIDP_CLIENT_SECRET")]
        client_secret: String,
        /// The proxy's public origin, e.g. http://127.0.0.1:8080.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        portal_url: String,
    },
}

const ISSUER_PATH: &str = "/auth/realms/esante-wallet";
/// The `iss` and `aud` of the Hopital Manager simulator's launch tokens, as
/// the demo's `[hm_sso]` expects them.
const HM_SIM_ISSUER: &str = "hopital-manager-simulation";
const HM_SIM_AUDIENCE: &str = "espace-ps-demo";
/// The simulator's JWKS, on the dev IdP's listener: the demo's `[hm_sso]`
/// trusts it (demo mode only). `espace-ps` refuses the simulator's key as a
/// PEM file in any configuration (its private half is public).
const HM_SIM_JWKS: &str = "/hopital-manager/jwks.json";

/// The dev identity provider; with `hm_launch_url`, also the Hopital
/// Manager simulator, posting its launches there.
fn dev_idp(
    listen: SocketAddr,
    client: DevClient,
    hm_launch_url: Option<String>,
) -> Result<Arc<DevIdp>, String> {
    let issuer =
        url::Url::parse(&format!("http://{listen}{ISSUER_PATH}")).map_err(|e| e.to_string())?;
    let mut cfg = DevIdpConfig::with_defaults(issuer, vec![client]);
    if let Some(url) = hm_launch_url {
        cfg.hopital_manager = Some(HmSimulatorConfig {
            launch_url: url::Url::parse(&url).map_err(|e| e.to_string())?,
            issuer: HM_SIM_ISSUER.into(),
            audience: HM_SIM_AUDIENCE.into(),
        });
    }
    DevIdp::new(cfg).map(Arc::new).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::DemoData {
            records,
            seed,
            patients,
            orthanc,
            studies,
            now,
        } => {
            init_logging(LogFormat::Text, "warn");
            if let Some(t) = now {
                if espace_ps::clock::start_at(t).is_err() {
                    return ExitCode::FAILURE;
                }
            }
            let run = async {
                if let Some(dir) = espace_ps_demo::data::sqlite_file(&records)
                    .and_then(|p| std::path::Path::new(p).parent())
                {
                    let _ = std::fs::create_dir_all(dir);
                }
                let generated =
                    espace_ps_demo::data::ensure_records(&records, seed, patients).await?;
                if !generated {
                    eprintln!("demo-data: {records} already holds records; left as is");
                }
                if let Some(o) = orthanc {
                    espace_ps_demo::data::load_studies(&records, &o, studies).await?;
                }
                Ok::<_, espace_ps_demo::data::DemoDataError>(())
            };
            match startup_runtime().block_on(run) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    print_error_chain(&e);
                    ExitCode::FAILURE
                }
            }
        }
        Command::Demo {
            listen,
            idp_listen,
            admin_listen,
            viewer,
            data_dir,
            policies,
            now,
            ohif_dir,
        } => {
            init_logging(LogFormat::Text, "info");
            if let Some(t) = now {
                if espace_ps::clock::start_at(t).is_err() {
                    return ExitCode::FAILURE;
                }
                tracing::warn!(now = %t, "demo: the clock is moved (--now)");
            }
            if let Err(e) = std::fs::create_dir_all(&data_dir) {
                eprintln!("cannot create {}: {e}", data_dir.display());
                return ExitCode::FAILURE;
            }
            let secret = espace_ps::session::new_token();
            let public = format!("http://{listen}");
            let db = data_dir.join("espace-ps.sqlite");
            // The demo's own copy of the policies, with its groups (Dr Hervé
            // Lefèvre's DICOM download habilitation); `policies` is not written.
            let demo_policies = data_dir.join("policies");
            if let Err(e) = espace_ps_demo::policies::prepare(&policies, &demo_policies) {
                print_error_chain(&e);
                return ExitCode::FAILURE;
            }
            let policies = demo_policies;
            let records = format!("sqlite://{}", data_dir.join("records.sqlite").display());
            let prepared = startup_runtime().block_on(async {
                espace_ps_demo::data::ensure_records(&records, 1961, 2000).await?;
                // Load the studies into the viewer when it runs and is empty.
                let base = format!("http://{viewer}");
                let empty = match reqwest::get(format!("{base}/studies")).await {
                    Ok(r) if r.status().is_success() => r
                        .json::<Vec<serde_json::Value>>()
                        .await
                        .map(|v| v.is_empty())
                        .unwrap_or(false),
                    _ => {
                        eprintln!(
                            "demo: no viewer answers on {viewer}: the portal runs without images"
                        );
                        false
                    }
                };
                if empty {
                    espace_ps_demo::data::load_studies(&records, &base, 400).await?;
                }
                Ok::<_, espace_ps_demo::data::DemoDataError>(())
            });
            if let Err(e) = prepared {
                print_error_chain(&e);
                return ExitCode::FAILURE;
            }
            let toml = format!(
                r#"
[server]
listen = "{listen}"
admin_listen = "{admin_listen}"
public_url = "{public}"
# Ctrl-C or SIGTERM: no gateway to warn, stop at once.
drain_delay_secs = 0

[upstream]
address = "{viewer}"
{ohif}

[psc]
issuer = "http://{idp_listen}{ISSUER_PATH}"
client_id = "espace-ps-demo"
client_secret = "{secret}"
dev_idp = true

[database]
url = "sqlite://{}?mode=rwc"

# Demo mode only: the Hopital Manager simulator's DEV-ONLY key (its JWKS)
# and its origin for direct launches.
[hm_sso]
issuer = "{HM_SIM_ISSUER}"
audience = "{HM_SIM_AUDIENCE}"
algorithms = ["ES256"]
jwks_url = "http://{idp_listen}{HM_SIM_JWKS}"
allowed_origins = ["http://{idp_listen}"]

[records]
url = "{records}?mode=ro"

[policies]
dir = "{}"
"#,
                db.display(),
                policies.display(),
                ohif = match &ohif_dir {
                    Some(d) => format!(
                        "viewer = \"ohif\"\nohif_dir = {:?}",
                        d.display().to_string()
                    ),
                    None => String::new(),
                },
            );
            let config = match Config::from_toml(&toml, |_| None) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("demo configuration invalid (a bug):\n{e}");
                    return ExitCode::FAILURE;
                }
            };
            let idp = match dev_idp(
                idp_listen,
                DevClient {
                    client_id: "espace-ps-demo".into(),
                    client_secret: secret,
                    redirect_uris: vec![format!("{public}/auth/callback")],
                    post_logout_redirect_uris: vec![format!("{public}/auth/logged-out")],
                },
                Some(format!("{public}/auth/hm-sso")),
            ) {
                Ok(i) => i,
                Err(e) => {
                    eprintln!("dev identity provider: {e}");
                    return ExitCode::FAILURE;
                }
            };
            eprintln!("{}", idp.warning_banner());
            println!("\nEspace professionnel de santé (démonstration) : {public}/");
            println!("Identités de démonstration (fournisseur d'identité de développement) :");
            for p in idp.professionals() {
                println!("  {}  {}", p.national_id, p.display_name());
            }
            println!("Hopital Manager (simulation) : http://{idp_listen}/hopital-manager");
            println!("Visualiseur attendu sur {viewer}. Arrêt : Ctrl-C.\n");
            let mut svc = pingora::services::listening::Service::new(
                "espace-ps dev-idp".into(),
                DevIdpApp(idp),
            );
            svc.add_tcp(&idp_listen.to_string());
            serve(config, vec![Box::new(svc)])
        }
        Command::DevIdp {
            listen,
            allow_remote,
            client_id,
            client_secret,
            portal_url,
        } => {
            init_logging(LogFormat::Text, "info");
            if !listen.ip().is_loopback() && !allow_remote {
                eprintln!("refusing to listen on {listen}: the dev identity provider binds to loopback unless --allow-remote is given");
                return ExitCode::from(2);
            }
            let portal = portal_url.trim_end_matches('/');
            let idp = match dev_idp(
                listen,
                DevClient {
                    client_id,
                    client_secret,
                    redirect_uris: vec![format!("{portal}/auth/callback")],
                    post_logout_redirect_uris: vec![format!("{portal}/auth/logged-out")],
                },
                None,
            ) {
                Ok(i) => i,
                Err(e) => {
                    eprintln!("dev identity provider: {e}");
                    return ExitCode::from(2);
                }
            };
            eprintln!("{}", idp.warning_banner());
            let mut server = pingora::server::Server::new_with_opt_and_conf(
                Some(pingora::server::configuration::Opt::default()),
                pingora::server::configuration::ServerConf {
                    threads: 1,
                    grace_period_seconds: Some(0),
                    graceful_shutdown_timeout_seconds: Some(1),
                    ..Default::default()
                },
            );
            server.bootstrap();
            let mut svc = pingora::services::listening::Service::new(
                "espace-ps dev-idp".into(),
                DevIdpApp(idp),
            );
            svc.add_tcp(&listen.to_string());
            server.add_service(svc);
            server.run_forever()
        }
    }
}
