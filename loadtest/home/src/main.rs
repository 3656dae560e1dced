//! The home page benchmark (issue 11 §3): "Derniers résultats non vus" for a
//! professional with 2,000 unseen reports, on the 1M-patient records
//! (`loadtest/search` generates them), with the portal database on the same
//! PostgreSQL.
//!
//! `seed` adds reports dated within the last 30 days (of `--today`) to the
//! professional's dossiers until they hold `--unseen` of them (ids
//! `HOME-BENCH-…`, removed first, so it can run again); `run` checks the
//! query plan (indexes, no sequential scan of a large table) and times
//! `espace_ps::portal::home::unseen_entries`, the home page's own code for
//! its data, in process; `http` times the whole page (`GET /` with a
//! session cookie) of a running `espace-ps serve`, what a doctor waits for.
//! Run it with an optimized build for figures (`run.sh`).

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use espace_ps::identity::{LoginMethod, NationalId, Professional};
use espace_ps::session::SessionData;
use sqlx::any::AnyPoolOptions;
use sqlx::Row;
use time::macros::format_description;
use time::Date;

#[derive(Parser)]
#[command(about = "espace-ps home page benchmark (unseen results)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Give the professional `--unseen` reports within the last 30 days.
    Seed {
        /// The records database (writable), e.g. postgres://espace@127.0.0.1:PORT/records_1m
        #[arg(long)]
        url: String,
        /// National id of the professional (default: the demo GP, Élise Martin-Dupré).
        #[arg(long, default_value = "899700123450")]
        national_id: String,
        #[arg(long, default_value_t = 2000)]
        unseen: u32,
        /// "today" of the data, YYYY-MM-DD (the one `generate` used).
        #[arg(long, default_value = "2025-06-15")]
        today: String,
    },
    /// Time the home page's unseen results.
    Run {
        /// The records database, e.g. postgres://…/records_1m
        #[arg(long)]
        records: String,
        /// The portal database (seen marks), e.g. postgres://…/portal_bench
        #[arg(long)]
        portal_db: String,
        /// The policy directory.
        #[arg(long, default_value = "policies")]
        policies: String,
        #[arg(long, default_value = "899700123450")]
        national_id: String,
        #[arg(long, default_value = "2025-06-15")]
        today: String,
        /// The portal's `unseen_days`.
        #[arg(long, default_value_t = 30)]
        days: i64,
        #[arg(long, default_value_t = 20)]
        warmup: u32,
        #[arg(long, default_value_t = 500)]
        requests: u32,
    },
    /// Time the whole home page (`GET /`) of a running espace-ps, one
    /// request at a time on one kept-alive connection.
    Http {
        /// espace-ps's base URL, e.g. http://127.0.0.1:PORT
        #[arg(long)]
        base: String,
        /// The session cookie, `name=value` (e.g. from a Hopital Manager launch).
        #[arg(long)]
        cookie: String,
        #[arg(long, default_value_t = 20)]
        warmup: u32,
        #[arg(long, default_value_t = 500)]
        requests: u32,
    },
}

fn parse_date(s: &str) -> Result<Date> {
    Date::parse(s, format_description!("[year]-[month]-[day]")).context("a YYYY-MM-DD date")
}

fn iso(d: Date) -> String {
    d.format(format_description!("[year]-[month]-[day]"))
        .expect("a date formats")
}

fn rpps_of(national_id: &str) -> Result<String> {
    let id = NationalId::parse(national_id).context("a national id")?;
    id.rpps()
        .map(str::to_owned)
        .context("the professional needs an RPPS (the unseen results are by care team)")
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Seed {
            url,
            national_id,
            unseen,
            today,
        } => seed(&url, &rpps_of(&national_id)?, unseen, parse_date(&today)?).await,
        Command::Run {
            records,
            portal_db,
            policies,
            national_id,
            today,
            days,
            warmup,
            requests,
        } => {
            let since = iso(parse_date(&today)? - time::Duration::days(days));
            run(
                &records,
                &portal_db,
                &policies,
                &national_id,
                &since,
                warmup,
                requests,
            )
            .await
        }
        Command::Http {
            base,
            cookie,
            warmup,
            requests,
        } => http(&base, &cookie, warmup, requests).await,
    }
}

async fn seed(url: &str, rpps: &str, unseen: u32, today: Date) -> Result<()> {
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await?;
    let since = iso(today - time::Duration::days(29));
    sqlx::query("DELETE FROM rec_reports WHERE report_id LIKE 'HOME-BENCH-%'")
        .execute(&pool)
        .await?;
    let dossiers: Vec<String> = sqlx::query(
        "SELECT DISTINCT c.dossier_number FROM rec_care_team c WHERE c.rpps = $1 \
         ORDER BY c.dossier_number",
    )
    .bind(rpps)
    .fetch_all(&pool)
    .await?
    .iter()
    .map(|r| r.try_get::<String, _>(0))
    .collect::<Result<_, _>>()?;
    if dossiers.is_empty() {
        bail!("RPPS {rpps} is on no care team");
    }
    let existing: i64 = sqlx::query(
        "SELECT COUNT(*) FROM rec_reports r WHERE r.report_date >= $2 AND r.dossier_number IN \
         (SELECT c.dossier_number FROM rec_care_team c WHERE c.rpps = $1)",
    )
    .bind(rpps)
    .bind(&since)
    .fetch_one(&pool)
    .await?
    .try_get(0)?;
    let add = i64::from(unseen).saturating_sub(existing);
    let mut tx = pool.begin().await?;
    for i in 0..add {
        // Spread over the professional's dossiers and the 30 days.
        let dossier = &dossiers[(i as usize * 7919) % dossiers.len()];
        let date = iso(today - time::Duration::days(i % 30));
        sqlx::query(
            "INSERT INTO rec_reports (report_id, dossier_number, exam_id, title, report_date, content, content_location) \
             VALUES ($1, $2, NULL, 'CR Médical', $3, 'Compte rendu du banc d''essai.', NULL)",
        )
        .bind(format!("HOME-BENCH-{i:05}"))
        .bind(dossier)
        .bind(date)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    if url.starts_with("postgres") {
        sqlx::query("ANALYZE rec_reports").execute(&pool).await?;
    }
    println!(
        "RPPS {rpps}: {existing} recent reports already, {add} added over {} dossiers: {} within the last 30 days of {}",
        dossiers.len().min(add.max(0) as usize),
        existing + add,
        iso(today)
    );
    Ok(())
}

async fn run(
    records_url: &str,
    portal_db: &str,
    policies: &str,
    national_id: &str,
    since: &str,
    warmup: u32,
    requests: u32,
) -> Result<()> {
    let rpps = rpps_of(national_id)?;
    let records = espace_ps_records::Records::connect_with(records_url, 4).await?;
    let db = espace_ps::state::PortalDb::connect(portal_db, 4).await?;
    let engine = espace_ps_access::Engine::load(policies).map_err(|e| anyhow::anyhow!("{e}"))?;
    let facts = std::sync::Arc::new(espace_ps::access::StoredFacts {
        records: Some(records.clone()),
        db: db.clone(),
    });
    let access = espace_ps::access::Access::new(engine, facts);
    let session = SessionData {
        professional: Professional::new(
            NationalId::parse(national_id)?,
            "Bench".into(),
            "HOME".into(),
            LoginMethod::PscCard,
        ),
        // No seen marks for this account: every report is unseen.
        account_id: i64::MAX - 7,
        csrf_token: String::new(),
        created_at: 0,
        last_seen: 0,
        id_token: None,
        recent_patients: Vec::new(),
    };

    // The plan: every table reached through an index.
    if records_url.starts_with("postgres") {
        let sql = format!("EXPLAIN {}", espace_ps_records::RECENT_KEYS_SQL);
        let plan: Vec<String> = sqlx::query(&sql)
            .bind(&rpps)
            .bind(since)
            .bind(i64::from(espace_ps::portal::home::MAX_RECENT))
            .fetch_all(records.pool())
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<_, _>>()?;
        println!("plan of the recent-results query:\n  {}", plan.join("\n  "));
        // A sequential scan of a large table means a missing index (on a
        // small data set the planner may rightly prefer one).
        for table in [
            "rec_reports",
            "rec_care_team",
            "rec_dossiers",
            "rec_patients",
        ] {
            for l in &plan {
                if !(l.contains("Seq Scan") && l.contains(&format!(" {table} "))) {
                    continue;
                }
                let rows: u64 = l
                    .split("rows=")
                    .nth(1)
                    .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(u64::MAX);
                if rows >= 200_000 {
                    bail!("sequential scan of {table} ({rows} rows): an index is missing");
                }
                println!("(a sequential scan of {table}, {rows} rows: a small data set)");
            }
        }
    }

    let call = || async {
        let t = Instant::now();
        let list = espace_ps::portal::home::unseen_entries(&records, &db, &access, &session, since)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok::<_, anyhow::Error>((
            t.elapsed(),
            list.entries.len() + list.more,
            list.entries.iter().map(|e| e.reports.len()).sum::<usize>(),
        ))
    };
    for _ in 0..warmup {
        call().await?;
    }
    let mut times: Vec<Duration> = Vec::with_capacity(requests as usize);
    let (mut entries, mut reports) = (0, 0);
    println!("timing portal::home::unseen_entries: {warmup} warm-up calls, then {requests}");
    for _ in 0..requests {
        let (t, e, r) = call().await?;
        times.push(t);
        (entries, reports) = (e, r);
    }
    print_table(
        &format!("| {national_id} | unseen_entries | {reports} | {entries} |"),
        times,
    )?;
    breakdown(
        &records,
        &db,
        &access,
        &session,
        &rpps,
        since,
        requests.min(200),
    )
    .await
}

/// Where the time of `unseen_entries` goes: each of its steps alone, done
/// the way it does them, `rounds` times; the medians.
async fn breakdown(
    records: &espace_ps_records::Records,
    db: &espace_ps::state::PortalDb,
    access: &espace_ps::access::Access,
    session: &SessionData,
    rpps: &str,
    since: &str,
    rounds: u32,
) -> Result<()> {
    use espace_ps::portal::home::{walk_unseen, HOME_RESULTS_CAP, MAX_RECENT};
    use espace_ps_access::{Action, DossierRoles, Resource, Via};
    let err = |e: espace_ps_records::RecordsError| anyhow::anyhow!("{e}");
    let keys = records
        .recent_report_keys(rpps, since, MAX_RECENT)
        .await
        .map_err(err)?;
    let roles = records
        .roles_on_recent_dossiers(rpps, since)
        .await
        .map_err(err)?;
    let ids: Vec<String> = keys.iter().map(|k| k.report_id.clone()).collect();
    let seen = db.seen_among(session.account_id, &ids).await?;
    let decisions = std::cell::Cell::new(0usize);
    let mut decide = |k: &espace_ps_records::RecentKey| {
        decisions.set(decisions.get() + 1);
        access.decide(
            session,
            Action::ViewReport,
            Resource::Report {
                id: k.report_id.clone(),
                dossier_id: k.dossier_number.clone(),
            },
            Via::CareTeam,
            vec![DossierRoles {
                dossier_id: k.dossier_number.clone(),
                roles: roles[&k.dossier_number].clone(),
            }],
        )
    };
    let walk = walk_unseen(&keys, &seen, HOME_RESULTS_CAP, &mut decide);
    let per_walk = decisions.get();
    let shown: Vec<String> = walk
        .listed
        .iter()
        .flatten()
        .map(|&i| keys[i].report_id.clone())
        .collect();
    let median = |mut t: Vec<Duration>| {
        t.sort();
        format!("{:.2}", t[t.len() / 2].as_secs_f64() * 1000.0)
    };
    let mut steps: Vec<(String, String)> = Vec::new();
    macro_rules! step {
        ($name:expr, $body:expr) => {{
            let mut t = Vec::with_capacity(rounds as usize);
            for _ in 0..rounds.max(1) {
                let start = Instant::now();
                $body;
                t.push(start.elapsed());
            }
            steps.push(($name, median(t)));
        }};
    }
    step!(
        format!("keys of the {} recent reports (records)", keys.len()),
        records
            .recent_report_keys(rpps, since, MAX_RECENT)
            .await
            .map_err(err)?
    );
    step!(
        format!("roles on their {} dossiers (records)", roles.len()),
        records
            .roles_on_recent_dossiers(rpps, since)
            .await
            .map_err(err)?
    );
    step!(
        format!("seen marks among {} ids (portal database)", ids.len()),
        db.seen_among(session.account_id, &ids).await?
    );
    step!(
        format!("{per_walk} policy decisions, grouping (walk)"),
        walk_unseen(&keys, &seen, HOME_RESULTS_CAP, &mut decide)
    );
    step!(
        format!("whole rows of the {} listed reports (records)", shown.len()),
        records.recent_results(&shown, &roles).await.map_err(err)?
    );
    println!("\nwhere the time goes (each step alone, median of {rounds}):\n\n| step | median ms |\n|---|---|");
    for (name, ms) in steps {
        println!("| {name} | {ms} |");
    }
    Ok(())
}

/// The Markdown table of `docs/benchmarks.md`: `row` starts the line (the
/// professional, what was timed, the reports listed, the dossiers with
/// unseen reports), the percentiles end it.
fn print_table(row: &str, mut times: Vec<Duration>) -> Result<()> {
    if times.is_empty() {
        bail!("no request timed");
    }
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1];
    let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1000.0);
    println!(
        "\n| professional | timed | reports listed | dossiers with unseen reports | requests | p50 ms | p95 ms | p99 ms | max ms |\n\
         |---|---|---|---|---|---|---|---|---|\n\
         {row} {} | {} | {} | {} | {} |",
        times.len(),
        ms(pct(0.50)),
        ms(pct(0.95)),
        ms(pct(0.99)),
        ms(*times.last().unwrap())
    );
    Ok(())
}

/// What a home page shows of the unseen results: the entries listed, the
/// report links in them, and the "N autres résultats" count.
fn unseen_of(body: &str) -> Result<(usize, usize, usize)> {
    let start = body
        .find("id=\"resultats-non-vus\"")
        .context("no \"Derniers résultats non vus\" on the page")?;
    let section = &body[start..];
    let entries = section.matches("<li class=\"resultat\"").count();
    let reports = section.matches("href=\"/portail/comptes-rendus/").count();
    let more = section
        .split_once("Et ")
        .and_then(|(_, rest)| rest.trim_start_matches("au moins ").split_once(' '))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or(0);
    Ok((entries, reports, more))
}

async fn http(base: &str, cookie: &str, warmup: u32, requests: u32) -> Result<()> {
    espace_ps::run::install_tls_provider();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(1)
        .build()?;
    let url = format!("{}/", base.trim_end_matches('/'));
    let get = || async {
        let t = Instant::now();
        let r = client
            .get(&url)
            .header(reqwest::header::COOKIE, cookie)
            .send()
            .await?;
        let status = r.status();
        let body = r.text().await?;
        let elapsed = t.elapsed();
        if status != reqwest::StatusCode::OK {
            bail!("GET / answered {status}");
        }
        Ok::<_, anyhow::Error>((elapsed, body))
    };
    let (_, first) = get().await?;
    let (entries, reports, more) = unseen_of(&first)?;
    if entries == 0 {
        bail!("the home page lists no unseen result: wrong session, records or clock?");
    }
    println!(
        "GET / lists {entries} dossiers ({reports} reports) and {more} more: timing {warmup} warm-up requests, then {requests}"
    );
    for _ in 0..warmup {
        get().await?;
    }
    let mut times = Vec::with_capacity(requests as usize);
    for _ in 0..requests {
        let (t, body) = get().await?;
        if unseen_of(&body)? != (entries, reports, more) {
            bail!("the home page changed during the run");
        }
        times.push(t);
    }
    print_table(
        &format!(
            "| (session) | GET / over HTTP | {reports} | {} |",
            entries + more
        ),
        times,
    )
}
