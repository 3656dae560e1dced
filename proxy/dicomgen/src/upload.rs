//! Upload of generated instances to Orthanc through its REST API
//! (`POST /instances`, body `application/dicom`).

use serde::{Deserialize, Serialize};

use crate::GeneratedInstance;

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("HTTP error talking to Orthanc: {0}")]
    Http(#[from] reqwest::Error),
    #[error("Orthanc refused instance {sop_instance_uid}: HTTP {status}: {body}")]
    Refused {
        sop_instance_uid: String,
        status: u16,
        body: String,
    },
    #[error("instances of one upload_study call belong to several studies or patients")]
    MixedStudies,
    #[error("nothing to upload")]
    Empty,
}

/// Orthanc's answer to `POST /instances`, plus the DICOM UIDs we sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadedInstance {
    pub sop_instance_uid: String,
    pub series_instance_uid: String,
    /// Orthanc id of the instance (`ID`).
    pub orthanc_id: String,
    pub parent_series: String,
    pub parent_study: String,
    pub parent_patient: String,
    /// `Success` on first upload, `AlreadyStored` when uploaded again.
    pub status: String,
}

/// Orthanc ids of an uploaded study.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadedStudy {
    /// Orthanc id of the patient.
    pub patient: String,
    /// Orthanc id of the study.
    pub study: String,
    /// (SeriesInstanceUID, Orthanc series id), in upload order.
    pub series: Vec<(String, String)>,
    pub instances: Vec<UploadedInstance>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PostInstanceAnswer {
    #[serde(rename = "ID")]
    id: String,
    parent_patient: String,
    parent_study: String,
    parent_series: String,
    status: String,
}

/// Uploads one instance. `base_url` is Orthanc's root, e.g.
/// `http://127.0.0.1:8042` (a trailing slash is accepted).
pub async fn upload_instance(
    client: &reqwest::Client,
    base_url: &str,
    instance: &GeneratedInstance,
) -> Result<UploadedInstance, UploadError> {
    let url = format!("{}/instances", base_url.trim_end_matches('/'));
    let resp = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/dicom")
        .body(instance.bytes.clone())
        .send()
        .await?;
    let status = resp.status();
    let body = resp.text().await?;
    let refused = |body: String| UploadError::Refused {
        sop_instance_uid: instance.sop_instance_uid.clone(),
        status: status.as_u16(),
        body,
    };
    if !status.is_success() {
        return Err(refused(body));
    }
    let a: PostInstanceAnswer = serde_json::from_str(&body).map_err(|_| refused(body.clone()))?;
    if a.status != "Success" && a.status != "AlreadyStored" {
        return Err(refused(body));
    }
    Ok(UploadedInstance {
        sop_instance_uid: instance.sop_instance_uid.clone(),
        series_instance_uid: instance.series_instance_uid.clone(),
        orthanc_id: a.id,
        parent_series: a.parent_series,
        parent_study: a.parent_study,
        parent_patient: a.parent_patient,
        status: a.status,
    })
}

/// Uploads every instance of one study (as returned by
/// [`crate::generate_study`]) and returns the Orthanc ids of the patient,
/// study, series and instances. Uploading again is harmless (Orthanc
/// answers `AlreadyStored`).
pub async fn upload_study(
    client: &reqwest::Client,
    base_url: &str,
    instances: &[GeneratedInstance],
) -> Result<UploadedStudy, UploadError> {
    if instances.is_empty() {
        return Err(UploadError::Empty);
    }
    let mut uploaded = Vec::with_capacity(instances.len());
    for i in instances {
        uploaded.push(upload_instance(client, base_url, i).await?);
    }
    let first = &uploaded[0];
    let (patient, study) = (first.parent_patient.clone(), first.parent_study.clone());
    if uploaded
        .iter()
        .any(|u| u.parent_patient != patient || u.parent_study != study)
    {
        return Err(UploadError::MixedStudies);
    }
    let mut series: Vec<(String, String)> = Vec::new();
    for u in &uploaded {
        if !series.iter().any(|(uid, _)| uid == &u.series_instance_uid) {
            series.push((u.series_instance_uid.clone(), u.parent_series.clone()));
        }
    }
    Ok(UploadedStudy {
        patient,
        study,
        series,
        instances: uploaded,
    })
}
