//! What espace-ps asks the viewer itself (server side, never on behalf of
//! the browser's own URL): where a study opens. With Orthanc: the study's
//! Orthanc id by its StudyInstanceUID, then its first series in the web viewer.

use std::time::Duration;

use serde_json::Value;

use crate::app::App;

#[derive(Debug, thiserror::Error)]
pub enum ViewerError {
    #[error("viewer unreachable: {0}")]
    Unreachable(String),
    #[error("study not found in the viewer")]
    NotFound,
}

fn base(app: &App) -> String {
    let up = &app.config.upstream;
    format!("{}://{}", if up.tls { "https" } else { "http" }, up.address)
}

/// The web viewer URL (through the proxy) that shows a study.
pub async fn viewer_url_for_study(app: &App, study_uid: &str) -> Result<String, ViewerError> {
    let http = &app.viewer_http;
    let err = |e: reqwest::Error| ViewerError::Unreachable(e.to_string());
    let found: Value = http
        .post(format!("{}/tools/lookup", base(app)))
        .body(study_uid.to_owned())
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(err)?
        .json()
        .await
        .map_err(err)?;
    let study_id = found
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["Type"] == "Study")
        .and_then(|e| e["ID"].as_str())
        .ok_or(ViewerError::NotFound)?
        .to_owned();
    let study: Value = http
        .get(format!("{}/studies/{study_id}", base(app)))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(err)?
        .json()
        .await
        .map_err(err)?;
    let series = study["Series"]
        .as_array()
        .and_then(|s| s.first())
        .and_then(Value::as_str)
        .ok_or(ViewerError::NotFound)?;
    Ok(format!(
        "/web-viewer/app/viewer.html?series={}",
        urlencoding::encode(series)
    ))
}
