//! Which study resolver a route table's viewer uses (`[resolver]` in the
//! table): how espace-ps asks the archive behind the viewer which study a
//! series or an instance belongs to. The proxy builds the resolver this
//! names (`espace-ps`'s `viewer::orthanc`, `viewer::dicomweb`); this module
//! only reads and checks what the administrator wrote.

use serde::Deserialize;

use super::classify::IdKind;

/// `[resolver]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResolverDef {
    kind: String,
    #[serde(default)]
    qido_root: Option<String>,
    #[serde(default)]
    study_page: Option<String>,
}

/// The placeholder of `study_page` replaced by the StudyInstanceUID.
pub const STUDY_PLACEHOLDER: &str = "{study}";

/// How the archive behind a viewer is asked about its resources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolver {
    /// Orthanc's REST API (`/tools/lookup`, `/series/{id}/study`, …): the
    /// only one that also knows Orthanc's own resource ids (`orthanc-id`).
    /// The default when a table has no `[resolver]`.
    OrthancRest,
    /// Standard DICOMweb: QIDO-RS `{qido_root}/series?SeriesInstanceUID=`
    /// and `{qido_root}/instances?SOPInstanceUID=` on the viewer's upstream,
    /// the StudyInstanceUID read from the archive's answer. Any archive
    /// (Orthanc's DICOMweb plugin, dcm4chee, a cloud archive).
    DicomWeb {
        /// The path of the archive's DICOMweb service on the upstream
        /// (`/dicom-web`), without a trailing slash.
        qido_root: String,
        /// Where the portal's "Afficher les images" leads, through the
        /// proxy, `{study}` replaced by the (url-encoded) StudyInstanceUID.
        study_page: String,
    },
}

impl Resolver {
    /// Its name as written in `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Resolver::OrthancRest => "orthanc-rest",
            Resolver::DicomWeb { .. } => "dicomweb",
        }
    }

    /// Whether it can resolve ids of this kind (a DICOMweb archive has no
    /// ids of its own).
    pub fn resolves(&self, kind: IdKind) -> bool {
        match self {
            Resolver::OrthancRest => true,
            Resolver::DicomWeb { .. } => kind != IdKind::OrthancId,
        }
    }
}

/// Checks `[resolver]`; the problems are messages about the table.
pub(crate) fn validate(def: Option<&ResolverDef>) -> Result<Resolver, Vec<String>> {
    let Some(def) = def else {
        return Ok(Resolver::OrthancRest);
    };
    let mut problems = Vec::new();
    let resolver = match def.kind.as_str() {
        "orthanc-rest" => {
            if def.qido_root.is_some() || def.study_page.is_some() {
                problems.push(
                    "[resolver] qido_root and study_page are for kind = \"dicomweb\"".to_owned(),
                );
            }
            Resolver::OrthancRest
        }
        "dicomweb" => {
            let qido_root = def.qido_root.clone().unwrap_or_default();
            if !is_plain_path(&qido_root)
                || qido_root.ends_with('/')
                || qido_root.contains(['{', '}'])
            {
                problems.push(format!(
                    "[resolver] qido_root {qido_root:?}: write the path of the archive's DICOMweb service on the upstream, e.g. \"/dicom-web\" (a leading '/', no trailing '/', no query, no dot segment)"
                ));
            }
            let study_page = def.study_page.clone().unwrap_or_default();
            let (path, query) = study_page.split_once('?').unwrap_or((&study_page, ""));
            if !is_plain_path(path)
                || study_page.matches(STUDY_PLACEHOLDER).count() != 1
                || query.contains(['#', ' ', '\\'])
            {
                problems.push(format!(
                    "[resolver] study_page {study_page:?}: write a path of the proxy with {STUDY_PLACEHOLDER} once, e.g. \"/visionneuse/viewer?StudyInstanceUIDs={STUDY_PLACEHOLDER}\""
                ));
            }
            Resolver::DicomWeb {
                qido_root,
                study_page,
            }
        }
        other => {
            problems.push(format!(
                "[resolver] kind {other:?}: expected \"orthanc-rest\" or \"dicomweb\""
            ));
            Resolver::OrthancRest
        }
    };
    if problems.is_empty() {
        Ok(resolver)
    } else {
        Err(problems)
    }
}

/// An absolute path of this origin: `/`, then segments without `\`, dot
/// segments, empty segments, a query or a fragment (`//host` would leave
/// the origin).
fn is_plain_path(p: &str) -> bool {
    let Some(rest) = p.strip_prefix('/') else {
        return false;
    };
    rest.is_empty()
        || rest.trim_end_matches('/').split('/').all(|s| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.bytes().all(|b| {
                    b.is_ascii_alphanumeric()
                        || matches!(b, b'-' | b'_' | b'.' | b'~' | b'{' | b'}')
                })
        })
}
