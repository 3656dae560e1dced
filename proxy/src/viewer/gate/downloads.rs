//! "Télécharger la série (DICOM)": what the banner of a viewer page offers,
//! and how a series download is named in the audit trail.
//!
//! The page's own request is a shell (no resource), but the resolver that
//! built the page's address knows which resource it shows
//! ([`StudyResolver::page_resource`]). When this professional may download
//! DICOM from that study (the same decision as for any download), the
//! resolver lists the study's series with the viewer request that answers
//! each as a ZIP ([`StudyResolver::series_archives`]); a link is offered
//! only when the route table classifies that request as a series download
//! (class D), so that following it goes through the gate like any other
//! download: decided again, audited, refused without the habilitation.
//! Anything that fails here offers nothing (the page itself is served).
//!
//! [`StudyResolver::page_resource`]: crate::viewer::StudyResolver::page_resource
//! [`StudyResolver::series_archives`]: crate::viewer::StudyResolver::series_archives

use std::sync::Arc;

use espace_ps_access::viewer::{
    Candidate, Class, Classification, IdKind, Level, ResourceRef, RouteTable,
};
use espace_ps_access::Action;

use super::{Gate, ViewerRequest};
use crate::inject::DownloadLink;
use crate::viewer::resolver::SeriesArchive;

impl Gate {
    /// The series downloads the banner of the page `page_target` offers
    /// this session (none: not a page the resolver knows, no habilitation,
    /// or the archive did not answer).
    pub(super) async fn page_downloads(
        &self,
        r: &ViewerRequest<'_>,
        table: &RouteTable,
        page_target: &str,
        session: &Arc<str>,
    ) -> Vec<DownloadLink> {
        let Some((level, kind, id)) = self.studies.resolver().page_resource(page_target) else {
            return Vec::new();
        };
        let studies = match self.studies.of_resource(level, kind, &id).await {
            Ok(s) => s,
            Err(e) => {
                tracing::info!(error = %e, "viewer page resource not resolved: no download offered");
                return Vec::new();
            }
        };
        let mut links = Vec::new();
        for study in studies.iter() {
            if self
                .decide(session, r.session, Action::DownloadDicom, study)
                .await
                != Some(true)
            {
                return Vec::new();
            }
            let series = match self.studies.resolver().series_archives(study).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::info!(error = %e, "series of the study not listed: no download offered");
                    return Vec::new();
                }
            };
            for (n, s) in series.iter().enumerate() {
                match series_download_target(table, &s.archive_target) {
                    Some(href) => links.push(DownloadLink {
                        label: label(n + 1, s),
                        href,
                    }),
                    None => tracing::warn!(
                        "the resolver's series archive is not a series download in the route table: not offered"
                    ),
                }
            }
        }
        links
    }

    /// The audit detail of a download: the route, and for a series its
    /// SeriesInstanceUID (asked of the archive when the request names the
    /// series by an id of the archive's own; that id when it cannot say).
    pub(super) async fn download_detail(&self, c: &Candidate) -> String {
        let ResourceRef::One { kind, id } = &c.resource else {
            return c.route_id.clone();
        };
        if c.level != Level::Series {
            return c.route_id.clone();
        }
        let series = match kind {
            IdKind::DicomUid => id.clone(),
            _ => match self.studies.resolver().series_uid_of_archive_id(id).await {
                Ok(uid) => uid,
                Err(_) => format!("archive:{id}"),
            },
        };
        format!("{} series={series}", c.route_id)
    }
}

/// The canonical form of `target` when the route table classifies it as a
/// download (class D) of one series.
fn series_download_target(table: &RouteTable, target: &str) -> Option<String> {
    let canonical = table.canonicalize("GET", target, &[]).ok()?;
    match table.classify(&canonical) {
        Classification::Candidate(c)
            if c.class == Class::Download
                && c.level == Level::Series
                && matches!(c.resource, ResourceRef::One { .. }) =>
        {
            Some(canonical.target())
        }
        _ => None,
    }
}

/// "CT – THORAX (120 images)"; "Série 2 (1 image)" without a label.
fn label(n: usize, s: &SeriesArchive) -> String {
    let name = if s.label.is_empty() {
        format!("Série {n}")
    } else {
        s.label.clone()
    };
    match s.instances {
        Some(1) => format!("{name} (1 image)"),
        Some(k) => format!("{name} ({k} images)"),
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(label: &str, instances: Option<usize>) -> SeriesArchive {
        SeriesArchive {
            series_uid: "1.2.3".into(),
            label: label.into(),
            instances,
            archive_target: String::new(),
        }
    }

    #[test]
    fn labels_count_images_in_french() {
        assert_eq!(
            label(1, &archive("CT – THORAX", Some(120))),
            "CT – THORAX (120 images)"
        );
        assert_eq!(label(2, &archive("", Some(1))), "Série 2 (1 image)");
        assert_eq!(label(3, &archive("MR", None)), "MR");
    }
}
