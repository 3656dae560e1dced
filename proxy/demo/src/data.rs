//! Demo data: the records database (seeded, reproducible) and, when a
//! viewer is given, the matching DICOM studies loaded into Orthanc.

use espace_ps_demo_data::{self as demo_data, DemoConfig};
use espace_ps_dicomgen::{generate_study, upload_study, StudySpec};

#[derive(Debug, thiserror::Error)]
pub enum DemoDataError {
    #[error("records: {0}")]
    Records(#[from] espace_ps_records::RecordsError),
    #[error("DICOM generation: {0}")]
    Dicom(String),
    #[error("viewer upload: {0}")]
    Upload(String),
}

/// Fills an empty records database; leaves a filled one alone. Returns
/// whether it generated.
pub async fn ensure_records(url: &str, seed: u64, patients: u32) -> Result<bool, DemoDataError> {
    if let Ok(r) = espace_ps_records::Records::connect_with(url, 1).await {
        let count = |table: &'static str| {
            let pool = r.pool().clone();
            async move {
                sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {table}"))
                    .fetch_one(&pool)
                    .await
                    .unwrap_or(0)
            }
        };
        let patients_there = count("rec_patients").await > 0;
        let current = patients_there && count("rec_search_tokens").await > 0;
        r.pool().close().await;
        if current {
            return Ok(false);
        }
        if patients_there {
            // Demo records written by an older espace-ps (no name-search
            // index): generated data, so a demo SQLite file is made anew;
            // any other database is the operator's to empty.
            let Some(path) = sqlite_file(url) else {
                return Err(DemoDataError::Records(
                    espace_ps_records::RecordsError::Demo(
                        "the records database predates the search index (rec_search_tokens): empty it and run again".into(),
                    ),
                ));
            };
            eprintln!("demo-data: {path} predates the search index; generating it anew");
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{path}{suffix}"));
            }
        }
    }
    let mut cfg = DemoConfig::demo(espace_ps::clock::today());
    cfg.seed = seed;
    cfg.patients = patients;
    let summary = demo_data::generate(url, &cfg).await?;
    eprintln!(
        "demo-data: {} patients, {} dossiers, {} care-team rows, {} exams, {} reports",
        summary.patients, summary.dossiers, summary.care_team, summary.exams, summary.reports
    );
    Ok(true)
}

/// The file of a `sqlite://` URL (without its query), if it names one.
pub fn sqlite_file(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite://")?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// Generates the DICOM studies of the demo professionals' patients and
/// uploads them to Orthanc at `orthanc` (skips studies already there).
pub async fn load_studies(
    records_url: &str,
    orthanc: &str,
    limit: u32,
) -> Result<usize, DemoDataError> {
    let rows =
        demo_data::studies(records_url, &demo_data::default_national_ids(), Some(limit)).await?;
    let client = reqwest::Client::new();
    let mut loaded = 0;
    for row in rows {
        let spec = StudySpec::from(&row);
        let instances = match generate_study(&spec) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("demo-data: a study was skipped: {e}");
                continue;
            }
        };
        upload_study(&client, orthanc, &instances)
            .await
            .map_err(|e| DemoDataError::Upload(e.to_string()))?;
        loaded += 1;
    }
    eprintln!("demo-data: {loaded} studies in the viewer");
    Ok(loaded)
}
