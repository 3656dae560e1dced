//! The [`StudyResolver`] of Orthanc: DICOM UIDs through `/tools/lookup`,
//! Orthanc's own resource ids through its REST API. Orthanc's ids exist
//! only here.

use std::time::Duration;

use async_trait::async_trait;
use espace_ps_access::viewer::Level;
use serde_json::Value;

use super::resolver::{ResolveError, StudyResolver};

/// How long espace-ps waits for one answer of Orthanc.
const TIMEOUT: Duration = Duration::from_secs(5);

pub struct OrthancResolver {
    /// `http://host:port` of Orthanc.
    base: String,
    /// For espace-ps's own calls to the viewer (never the browser's).
    http: reqwest::Client,
}

impl OrthancResolver {
    pub fn new(base: String) -> Result<OrthancResolver, reqwest::Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(OrthancResolver { base, http })
    }

    async fn get_json(&self, path: &str) -> Result<Value, ResolveError> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .timeout(TIMEOUT)
            .send()
            .await
            .map_err(unreachable)?;
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(ResolveError::NotFound);
        }
        r.error_for_status()
            .map_err(unreachable)?
            .json()
            .await
            .map_err(unreachable)
    }

    /// Orthanc's id of a DICOM UID at a level (`Study`, `Series`, `Instance`).
    async fn lookup(&self, uid: &str, level: &str) -> Result<String, ResolveError> {
        let found: Value = self
            .http
            .post(format!("{}/tools/lookup", self.base))
            .body(uid.to_owned())
            .timeout(TIMEOUT)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(unreachable)?
            .json()
            .await
            .map_err(unreachable)?;
        found
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["Type"] == level)
            .and_then(|e| e["ID"].as_str())
            .map(str::to_owned)
            .ok_or(ResolveError::NotFound)
    }

    /// The StudyInstanceUID of the study a series or an instance belongs to.
    async fn parent_study(&self, path_level: &str, id: &str) -> Result<String, ResolveError> {
        let s = self.get_json(&format!("/{path_level}/{id}/study")).await?;
        study_uid_of(&s).ok_or(ResolveError::NotFound)
    }
}

fn unreachable(e: reqwest::Error) -> ResolveError {
    ResolveError::Unreachable(e.to_string())
}

fn study_uid_of(v: &Value) -> Option<String> {
    v["MainDicomTags"]["StudyInstanceUID"]
        .as_str()
        .map(str::to_owned)
}

#[async_trait]
impl StudyResolver for OrthancResolver {
    async fn study_of_series(&self, series_uid: &str) -> Result<String, ResolveError> {
        let id = self.lookup(series_uid, "Series").await?;
        self.parent_study("series", &id).await
    }

    async fn study_of_instance(&self, sop_instance_uid: &str) -> Result<String, ResolveError> {
        let id = self.lookup(sop_instance_uid, "Instance").await?;
        self.parent_study("instances", &id).await
    }

    async fn studies_of_archive_id(
        &self,
        level: Level,
        id: &str,
    ) -> Result<Vec<String>, ResolveError> {
        match level {
            Level::Study => {
                let s = self.get_json(&format!("/studies/{id}")).await?;
                Ok(vec![study_uid_of(&s).ok_or(ResolveError::NotFound)?])
            }
            Level::Series => Ok(vec![self.parent_study("series", id).await?]),
            Level::Instance => Ok(vec![self.parent_study("instances", id).await?]),
            Level::Patient => {
                let list = self.get_json(&format!("/patients/{id}/studies")).await?;
                let uids: Vec<String> = list
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(study_uid_of)
                    .collect();
                if uids.is_empty() {
                    return Err(ResolveError::NotFound);
                }
                Ok(uids)
            }
            _ => Err(ResolveError::Unresolvable("level")),
        }
    }

    async fn viewer_url(&self, study_uid: &str) -> Result<String, ResolveError> {
        let study_id = self.lookup(study_uid, "Study").await?;
        let study = self.get_json(&format!("/studies/{study_id}")).await?;
        let series = study["Series"]
            .as_array()
            .and_then(|s| s.first())
            .and_then(Value::as_str)
            .ok_or(ResolveError::NotFound)?;
        Ok(format!(
            "/web-viewer/app/viewer.html?series={}",
            urlencoding::encode(series)
        ))
    }
}
