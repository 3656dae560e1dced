//! The [`StudyResolver`] of Orthanc: DICOM UIDs through `/tools/lookup`,
//! Orthanc's own resource ids through its REST API. Orthanc's ids exist
//! only here.

use std::time::Duration;

use async_trait::async_trait;
use espace_ps_access::viewer::{IdKind, Level};
use serde_json::Value;

use super::resolver::{ResolveError, SeriesArchive, StudyResolver};

/// The Orthanc Web Viewer's page, opened as `?series={orthanc series id}`.
const VIEWER_PAGE: &str = "/web-viewer/app/viewer.html";

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

/// Orthanc's resource id: five groups of 8 lower-case hex digits.
fn is_orthanc_id(id: &str) -> bool {
    espace_ps_access::viewer::is_well_formed(IdKind::OrthancId, id)
}

/// What the banner says of a series: "CT – THORAX" (either may be missing).
fn series_label(tags: &Value) -> String {
    ["Modality", "SeriesDescription"]
        .iter()
        .filter_map(|k| tags[k].as_str())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect::<Vec<_>>()
        .join(" – ")
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
            "{VIEWER_PAGE}?series={}",
            urlencoding::encode(series)
        ))
    }

    fn page_resource(&self, target: &str) -> Option<(Level, IdKind, String)> {
        let (path, query) = target.split_once('?')?;
        if path != VIEWER_PAGE {
            return None;
        }
        let mut ids = url::form_urlencoded::parse(query.as_bytes())
            .filter(|(k, _)| k == "series")
            .map(|(_, v)| v.into_owned());
        let id = ids.next()?;
        (ids.next().is_none() && is_orthanc_id(&id)).then_some((
            Level::Series,
            IdKind::OrthancId,
            id,
        ))
    }

    async fn series_archives(&self, study_uid: &str) -> Result<Vec<SeriesArchive>, ResolveError> {
        let study_id = self.lookup(study_uid, "Study").await?;
        let list = self
            .get_json(&format!("/studies/{study_id}/series"))
            .await?;
        let mut out: Vec<(i64, SeriesArchive)> = Vec::new();
        for s in list.as_array().into_iter().flatten() {
            let (Some(id), Some(uid)) = (
                s["ID"].as_str().filter(|id| is_orthanc_id(id)),
                s["MainDicomTags"]["SeriesInstanceUID"].as_str(),
            ) else {
                continue;
            };
            let number = s["MainDicomTags"]["SeriesNumber"]
                .as_str()
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(i64::MAX);
            out.push((
                number,
                SeriesArchive {
                    series_uid: uid.to_owned(),
                    label: series_label(&s["MainDicomTags"]),
                    instances: s["Instances"].as_array().map(Vec::len),
                    archive_target: format!("/series/{id}/archive"),
                },
            ));
        }
        out.sort_by(|a, b| (a.0, &a.1.series_uid).cmp(&(b.0, &b.1.series_uid)));
        Ok(out.into_iter().map(|(_, s)| s).collect())
    }

    async fn series_uid_of_archive_id(&self, id: &str) -> Result<String, ResolveError> {
        if !is_orthanc_id(id) {
            return Err(ResolveError::NotFound);
        }
        let s = self.get_json(&format!("/series/{id}")).await?;
        s["MainDicomTags"]["SeriesInstanceUID"]
            .as_str()
            .map(str::to_owned)
            .ok_or(ResolveError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "5f0c7a2e-9d41c3b8-e6ad3e0b-1c2a9f40-12345678";

    #[test]
    fn the_viewer_page_shows_its_series() {
        let r = OrthancResolver::new("http://127.0.0.1:9".into()).unwrap();
        assert_eq!(
            r.page_resource(&format!("{VIEWER_PAGE}?series={ID}")),
            Some((Level::Series, IdKind::OrthancId, ID.to_owned()))
        );
        for not_a_page in [
            VIEWER_PAGE.to_owned(),
            format!("{VIEWER_PAGE}?series={ID}&series={ID}"),
            format!("{VIEWER_PAGE}?series=../../tools/lookup"),
            format!("{VIEWER_PAGE}?series={}", ID.to_uppercase()),
            format!("/web-viewer/app/other.html?series={ID}"),
            format!("/series/{ID}"),
        ] {
            assert_eq!(r.page_resource(&not_a_page), None, "{not_a_page}");
        }
    }

    #[test]
    fn series_labels_name_modality_and_description() {
        let tags = serde_json::json!({"Modality": "CT", "SeriesDescription": " THORAX "});
        assert_eq!(series_label(&tags), "CT – THORAX");
        assert_eq!(series_label(&serde_json::json!({"Modality": "MR"})), "MR");
        assert_eq!(series_label(&serde_json::json!({})), "");
    }
}
