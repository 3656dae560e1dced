//! Which studies a viewer resource belongs to. The gate asks a
//! [`StudyResolver`] in DICOM terms (the study of a series, of an instance);
//! how an archive answers (Orthanc's REST API, a DICOMweb QIDO-RS service)
//! and what ids of its own it uses are the business of its implementation,
//! in its own module ([`super::orthanc`]).

use async_trait::async_trait;
use espace_ps_access::viewer::{IdKind, Level};

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("viewer unreachable: {0}")]
    Unreachable(String),
    #[error("resource not found in the viewer")]
    NotFound,
    #[error("resource cannot be resolved: {0}")]
    Unresolvable(&'static str),
}

/// One series of a study, as the viewer banner offers it for download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesArchive {
    /// The SeriesInstanceUID.
    pub series_uid: String,
    /// How the banner names it: modality and description, e.g. "CT –
    /// THORAX SANS INJECTION" (may be empty).
    pub label: String,
    /// Its number of instances, when the archive says.
    pub instances: Option<usize>,
    /// The viewer request (origin-form, through the proxy) that answers the
    /// series as a ZIP of DICOM files, e.g. Orthanc's
    /// `/series/{id}/archive`. The gate offers it only when the route table
    /// classifies it as a series download (class D), and decides and
    /// audits it as any other request when the browser asks for it.
    pub archive_target: String,
}

/// What the archive behind the viewer says about its resources. Every
/// answer comes from the archive itself, never from ids the client sent
/// alongside (a client may pair a study it may see with a series of another).
#[async_trait]
pub trait StudyResolver: Send + Sync {
    /// The StudyInstanceUID of the series with this SeriesInstanceUID.
    async fn study_of_series(&self, series_uid: &str) -> Result<String, ResolveError>;

    /// The StudyInstanceUID of the instance with this SOPInstanceUID.
    async fn study_of_instance(&self, sop_instance_uid: &str) -> Result<String, ResolveError>;

    /// The StudyInstanceUIDs of a resource the archive names by an id of its
    /// own (Orthanc's resource ids). An archive without ids of its own has
    /// nothing to resolve: refused.
    async fn studies_of_archive_id(
        &self,
        level: Level,
        id: &str,
    ) -> Result<Vec<String>, ResolveError> {
        let _ = (level, id);
        Err(ResolveError::Unresolvable("archive id"))
    }

    /// Whether [`StudyResolver::learn_from_answer`] is worth calling: the
    /// default, no.
    fn learns_from_answers(&self) -> bool {
        false
    }

    /// An answer of the archive (`application/dicom+json`: metadata, a
    /// QIDO-RS result) to a viewer request the gate allowed and forwarded.
    /// It is the archive's own word on the instances it lists, as a lookup's
    /// answer would be: a resolver may keep their studies, so the frames the
    /// viewer asks next need no lookup. The default ignores it.
    fn learn_from_answer(&self, body: &[u8]) {
        let _ = body;
    }

    /// The address (through the proxy) of the viewer page that shows a
    /// study: where the portal's "Voir les images" leads.
    async fn viewer_url(&self, study_uid: &str) -> Result<String, ResolveError>;

    /// The resource a viewer page shows, read from the page's canonical
    /// target (the inverse of [`StudyResolver::viewer_url`]): its level, id
    /// kind and id, e.g. the `series` of Orthanc's
    /// `/web-viewer/app/viewer.html?series={id}`. None (the default): not a
    /// page this resolver knows, and its banner offers no download.
    fn page_resource(&self, target: &str) -> Option<(Level, IdKind, String)> {
        let _ = target;
        None
    }

    /// The series of a study and, for each, the viewer request that
    /// downloads it as a ZIP of DICOM files. The default: unresolvable (the
    /// banner then offers no download).
    async fn series_archives(&self, study_uid: &str) -> Result<Vec<SeriesArchive>, ResolveError> {
        let _ = study_uid;
        Err(ResolveError::Unresolvable("series archives"))
    }

    /// The SeriesInstanceUID of a series the archive names by an id of its
    /// own, for the audit record of its download. The default: unresolvable
    /// (the record then names the archive's id).
    async fn series_uid_of_archive_id(&self, id: &str) -> Result<String, ResolveError> {
        let _ = id;
        Err(ResolveError::Unresolvable("archive id"))
    }
}
