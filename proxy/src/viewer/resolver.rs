//! Which studies a viewer resource belongs to. The gate asks a
//! [`StudyResolver`] in DICOM terms (the study of a series, of an instance);
//! how an archive answers (Orthanc's REST API, a DICOMweb QIDO-RS service)
//! and what ids of its own it uses are the business of its implementation,
//! in its own module ([`super::orthanc`]).

use async_trait::async_trait;
use espace_ps_access::viewer::Level;

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("viewer unreachable: {0}")]
    Unreachable(String),
    #[error("resource not found in the viewer")]
    NotFound,
    #[error("resource cannot be resolved: {0}")]
    Unresolvable(&'static str),
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

    /// The address (through the proxy) of the viewer page that shows a
    /// study: where the portal's "Voir les images" leads.
    async fn viewer_url(&self, study_uid: &str) -> Result<String, ResolveError>;
}
