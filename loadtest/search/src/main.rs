//! Patient-search benchmark: fills a records database with demo data at
//! hospital scale, then times `Records::search_patients` for 2-, 3- and
//! 5-character queries (and two-word queries of 3 + 3 characters) and
//! prints p50/p95/p99. See README.md.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use espace_ps_demo_data::{self as demo_data, showcase, DemoConfig};
use espace_ps_records::{search_tokens, Records};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sqlx::Row;
use time::Date;

#[derive(Parser)]
#[command(about = "espace-ps patient-search benchmark")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate demo records (3 dossiers and ~10 care-team rows per patient).
    Generate {
        /// sqlite://path (created) or postgres://user@host:port/db (empty)
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 1_000_000)]
        patients: u32,
        #[arg(long, default_value_t = 1961)]
        seed: u64,
        /// "today" of the data, YYYY-MM-DD
        #[arg(long, default_value = "2025-06-15")]
        today: String,
    },
    /// Time name searches.
    Search {
        /// sqlite://path?mode=ro or postgres://…
        #[arg(long)]
        url: String,
        /// timed queries per (professional, query length)
        #[arg(long, default_value_t = 500)]
        queries: usize,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

fn parse_date(s: &str) -> Result<Date> {
    let p: Vec<&str> = s.split('-').collect();
    if p.len() != 3 {
        bail!("expected YYYY-MM-DD: {s}");
    }
    let month = time::Month::try_from(p[1].parse::<u8>()?)?;
    Ok(Date::from_calendar_date(
        p[0].parse()?,
        month,
        p[2].parse()?,
    )?)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Generate {
            url,
            patients,
            seed,
            today,
        } => {
            let mut cfg = DemoConfig::benchmark(parse_date(&today)?, patients);
            cfg.seed = seed;
            let s = demo_data::generate(&url, &cfg).await?;
            println!(
                "patients {} tokens {} search_tokens {} dossiers {} care_team {} exams {} reports {} load_s {:.1} index_s {:.1}",
                s.patients,
                s.tokens,
                s.search_tokens,
                s.dossiers,
                s.care_team,
                s.exams,
                s.reports,
                s.load_ms as f64 / 1000.0,
                s.index_ms as f64 / 1000.0
            );
        }
        Cmd::Search {
            url,
            queries,
            limit,
        } => search(&url, queries, limit).await?,
    }
    Ok(())
}

struct Pro {
    label: String,
    rpps: String,
}

async fn search(url: &str, queries: usize, limit: u32) -> Result<()> {
    let rec = Records::connect_with(url, 2).await.context("connect")?;
    let pool = rec.pool();
    let counts: (i64, i64, i64, i64) = {
        let r = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM rec_patients), (SELECT COUNT(*) FROM rec_dossiers), \
             (SELECT COUNT(*) FROM rec_care_team), (SELECT COUNT(*) FROM rec_search_tokens)",
        )
        .fetch_one(pool)
        .await?;
        (r.get(0), r.get(1), r.get(2), r.get(3))
    };
    println!(
        "records: {} patients, {} dossiers, {} care-team rows, {} search-index rows ({:?})",
        counts.0,
        counts.1,
        counts.2,
        counts.3,
        rec.backend()
    );
    // professionals by care-team size: the demo GP, then the median, the
    // 90th percentile and the busiest of the others
    let t = Instant::now();
    let sizes = sqlx::query(
        "SELECT rpps, COUNT(*) AS n FROM rec_care_team WHERE rpps IS NOT NULL \
         GROUP BY rpps ORDER BY n, rpps",
    )
    .fetch_all(pool)
    .await?;
    eprintln!(
        "(care-team sizes computed in {:.1} s)",
        t.elapsed().as_secs_f64()
    );
    let sizes: Vec<(String, i64)> = sizes.iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut pros = vec![Pro {
        label: "demo GP (Élise Martin-Dupré)".into(),
        rpps: showcase::ELISE_RPPS.into(),
    }];
    for (label, q) in [("median", 0.5), ("p90", 0.9), ("busiest", 1.0)] {
        let i = (((sizes.len() - 1) as f64) * q) as usize;
        pros.push(Pro {
            label: format!("{label} professional"),
            rpps: sizes[i].0.clone(),
        });
    }

    let mut rng = ChaCha8Rng::seed_from_u64(42);
    println!();
    println!("| professional | care-team rows | patients | query length | p50 | p95 | p99 | max | mean hits |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for pro in &pros {
        let names = sqlx::query(
            "SELECT DISTINCT p.patient_id, p.family_name, p.given_name FROM rec_care_team c \
             JOIN rec_dossiers d ON d.dossier_number = c.dossier_number \
             JOIN rec_patients p ON p.patient_id = d.patient_id WHERE c.rpps = $1 \
             ORDER BY p.patient_id",
        )
        .bind(&pro.rpps)
        .fetch_all(pool)
        .await?;
        let rows: i64 = sqlx::query("SELECT COUNT(*) FROM rec_care_team WHERE rpps = $1")
            .bind(&pro.rpps)
            .fetch_one(pool)
            .await?
            .get(0);
        // (family-name words, given-name words) of each patient
        let patients: Vec<(Vec<String>, Vec<String>)> = names
            .iter()
            .map(|r| {
                let f: String = r.get(1);
                let g: String = r.get(2);
                (search_tokens(&f), search_tokens(&g))
            })
            .collect();
        let tokens: Vec<&Vec<String>> = patients.iter().flat_map(|(f, g)| [f, g]).collect();
        let prefix = |w: &str, len: usize| w.chars().take(len).collect::<String>().to_lowercase();
        for (label, len) in [("2", 2usize), ("3", 3), ("5", 5), ("3+3 (two words)", 0)] {
            // prefixes of a word of the name of one of this professional's
            // patients (so they find at least that patient); for "3+3", the
            // start of a family-name word then of a given-name word
            let make = |rng: &mut ChaCha8Rng| -> String {
                if len == 0 {
                    let (f, g) = patients.choose(rng).expect("patients");
                    let f = f.choose(rng).expect("family words");
                    let g = g.choose(rng).expect("given words");
                    return format!("{} {}", prefix(f, 3), prefix(g, 3));
                }
                let words = tokens.choose(rng).expect("patients");
                prefix(words.choose(rng).expect("words"), len)
            };
            for _ in 0..20 {
                let q = make(&mut rng);
                rec.search_patients(&pro.rpps, &q, limit).await?;
            }
            let mut times: Vec<Duration> = Vec::with_capacity(queries);
            let mut hits = 0usize;
            for _ in 0..queries {
                let q = make(&mut rng);
                let t = Instant::now();
                let r = rec.search_patients(&pro.rpps, &q, limit).await?;
                times.push(t.elapsed());
                hits += r.len();
            }
            times.sort();
            let pct = |p: f64| {
                let i = ((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1;
                format!("{:.2} ms", times[i].as_secs_f64() * 1000.0)
            };
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {:.1} |",
                pro.label,
                rows,
                names.len(),
                label,
                pct(0.50),
                pct(0.95),
                pct(0.99),
                pct(1.0),
                hits as f64 / queries as f64
            );
        }
    }
    Ok(())
}
