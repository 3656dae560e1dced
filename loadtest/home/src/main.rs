//! The home page benchmark (issue 11 §3): "Derniers résultats non vus" for a
//! professional with 2,000 unseen reports, on the 1M-patient records
//! (`loadtest/search` generates them), with the portal database on the same
//! PostgreSQL. It times `espace_ps::portal::home::unseen_entries`, the
//! home page's own code path for its data (records, seen marks, one policy
//! decision per report, grouping by dossier): everything of `GET /` but
//! the HTTP exchange, the session lookup and the template rendering.
//!
//! `seed` adds reports dated within the last 30 days (of `--today`) to the
//! professional's dossiers until they hold `--unseen` of them (ids
//! `HOME-BENCH-…`, removed first, so it can run again); `run` checks the
//! query plan (indexes, no sequential scan of a large table) and times
//! `--requests` calls after a warm-up. Run it in release mode for figures.

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
    for _ in 0..requests {
        let (t, e, r) = call().await?;
        times.push(t);
        (entries, reports) = (e, r);
    }
    if times.is_empty() {
        bail!("no request timed");
    }
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1];
    let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1000.0);
    println!(
        "\n| professional | reports listed | dossiers with unseen reports | requests | p50 ms | p95 ms | p99 ms | max ms |\n|---|---|---|---|---|---|---|---|\n| {national_id} | {reports} | {entries} | {requests} | {} | {} | {} | {} |",
        ms(pct(0.50)),
        ms(pct(0.95)),
        ms(pct(0.99)),
        ms(*times.last().unwrap())
    );
    Ok(())
}
