//! Requests to the viewer. The [`Gate`] decides each one (route table,
//! study resolution, policy decision, audit); a [`StudyResolver`] per
//! archive answers what studies a resource belongs to ([`orthanc`]'s REST
//! API or any archive's standard DICOMweb, [`dicomweb`], as the route
//! table's `[resolver]` says: [`resolver_for`]);
//! [`content`] says what must not flow back without the download permission.

pub mod cache;
pub mod content;
pub mod dicomweb;
pub mod gate;
pub mod orthanc;
pub mod resolver;
pub mod site;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use espace_ps_access::viewer::{Resolver, RouteTable};
use http::StatusCode;

pub use content::{is_dicom_content, must_cut_without_download};
pub use gate::{Forward, Gate, Verdict, ViewerRequest};
pub use resolver::{ResolveError, StudyResolver};

use crate::pages::ErrorPage;

pub const REFUSED: ErrorPage = ErrorPage::new(
    StatusCode::FORBIDDEN,
    "Accès refusé",
    "Vous n'avez pas accès à cette ressource du visualiseur d'images.",
)
.with_reference("visualiseur-refus");
pub const DOWNLOAD_REFUSED: ErrorPage = ErrorPage::new(
    StatusCode::FORBIDDEN,
    "Téléchargement non autorisé",
    "Le téléchargement des images au format DICOM est soumis à une habilitation que vous n'avez pas. Vous pouvez consulter les images dans le visualiseur.",
)
.with_reference("dicom-habilitation");
pub const MALFORMED: ErrorPage = ErrorPage::new(
    StatusCode::BAD_REQUEST,
    "Requête refusée",
    "Cette adresse n'est pas valide pour le visualiseur d'images.",
)
.with_reference("requete-invalide");

pub const VIEWER_UNAVAILABLE: ErrorPage = ErrorPage::new(
    StatusCode::BAD_GATEWAY,
    "Visualiseur indisponible",
    "Le visualiseur d'images de l'établissement ne répond pas pour le moment. Réessayez dans quelques minutes.",
)
.with_reference("visualiseur");

/// Why the gate refused a request; each has its French page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not classified, not resolved, or not allowed.
    Refused,
    /// Images may be viewed, DICOM not downloaded (no habilitation).
    DownloadRefused,
    /// Not a valid request for the viewer.
    Malformed,
    /// The audit trail cannot be written: no record, no access.
    Unavailable,
}

impl Refusal {
    pub fn page(self) -> &'static ErrorPage {
        match self {
            Refusal::Refused => &REFUSED,
            Refusal::DownloadRefused => &DOWNLOAD_REFUSED,
            Refusal::Malformed => &MALFORMED,
            Refusal::Unavailable => &crate::pages::UNAVAILABLE,
        }
    }
}

/// Loads the route table named `name` from `policies_dir/viewers`.
pub fn load_table(
    policies_dir: &std::path::Path,
    name: &str,
) -> Result<Option<RouteTable>, String> {
    let tables = espace_ps_access::viewer::load_dir(policies_dir).map_err(|problems| {
        problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    Ok(tables.into_iter().find(|t| t.name() == name))
}

/// The resolver a route table names (`[resolver]`), asking the archive at
/// `upstream` (`http(s)://host:port`).
pub fn resolver_for(
    table: &RouteTable,
    upstream: &str,
) -> Result<Arc<dyn StudyResolver>, reqwest::Error> {
    Ok(match table.resolver() {
        Resolver::OrthancRest => Arc::new(orthanc::OrthancResolver::new(upstream.to_owned())?),
        Resolver::DicomWeb {
            qido_root,
            study_page,
        } => Arc::new(dicomweb::DicomWebResolver::new(
            upstream, qido_root, study_page,
        )?),
    })
}

/// Reloads the gate's route table; a table that does not load, or names
/// another resolver than the one built at start-up, leaves the previous
/// one in force.
pub fn reload_route_table(gate: &Gate, dir: &std::path::Path, name: &str) {
    match load_table(dir, name) {
        Ok(Some(t))
            if gate
                .table()
                .is_some_and(|old| old.resolver() != t.resolver()) =>
        {
            tracing::error!(
                name,
                "route table names another [resolver]: restart espace-ps to use it; the previous table stays in force"
            )
        }
        Ok(Some(t)) => gate.set_table(Some(t)),
        Ok(None) => tracing::error!(name, "route table gone: the previous one stays in force"),
        Err(e) => {
            tracing::error!(problems = %e, "route table refused: the previous one stays in force")
        }
    }
}
