//! `espace-ps-dicom-load`: generates the DICOM studies described by a JSON
//! array of `StudySpec` and uploads them to Orthanc (and/or writes them as
//! `.dcm` files).
//!
//! ```text
//! espace-ps-dicom-load --orthanc http://127.0.0.1:8042 --spec-json studies.json
//! espace-ps-dicom-load --spec-json studies.json --out-dir /tmp/dcm
//! ```
//!
//! Prints one JSON line per study on stdout: the StudyInstanceUID, the
//! Orthanc ids (when uploaded) and the number of instances.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use espace_ps_dicomgen::{generate_study, upload_study, StudySpec};

#[derive(Parser, Debug)]
#[command(
    name = "espace-ps-dicom-load",
    version,
    about = "Generate demo DICOM studies and load them into Orthanc"
)]
struct Args {
    /// Orthanc base URL, e.g. http://127.0.0.1:8042
    #[arg(long, env = "ESPACE_ORTHANC_URL")]
    orthanc: Option<String>,
    /// JSON file holding an array of study specs ("-" for stdin)
    #[arg(long)]
    spec_json: PathBuf,
    /// Also write the files as OUT_DIR/<StudyInstanceUID>/<SOPInstanceUID>.dcm
    #[arg(long)]
    out_dir: Option<PathBuf>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.orthanc.is_none() && args.out_dir.is_none() {
        bail!("nothing to do: give --orthanc and/or --out-dir");
    }
    let text = if args.spec_json.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading stdin")?
    } else {
        std::fs::read_to_string(&args.spec_json)
            .with_context(|| format!("reading {}", args.spec_json.display()))?
    };
    let specs: Vec<StudySpec> =
        serde_json::from_str(&text).context("parsing the spec JSON (an array of StudySpec)")?;
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()?;

    for spec in &specs {
        let instances = generate_study(spec)
            .with_context(|| format!("generating study {}", spec.study_instance_uid))?;
        if let Some(dir) = &args.out_dir {
            let d = dir.join(&spec.study_instance_uid);
            std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
            for i in &instances {
                std::fs::write(d.join(format!("{}.dcm", i.sop_instance_uid)), &i.bytes)?;
            }
        }
        let mut line = serde_json::json!({
            "study_instance_uid": spec.study_instance_uid,
            "instances": instances.len(),
        });
        if let Some(url) = &args.orthanc {
            let up = upload_study(&client, url, &instances)
                .await
                .with_context(|| format!("uploading study {} to {url}", spec.study_instance_uid))?;
            line["orthanc_patient"] = up.patient.into();
            line["orthanc_study"] = up.study.into();
            line["orthanc_series"] = up
                .series
                .iter()
                .map(|(_, id)| id.clone())
                .collect::<Vec<_>>()
                .into();
        }
        println!("{line}");
    }
    eprintln!("{} studies done", specs.len());
    Ok(())
}
