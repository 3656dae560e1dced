//! The softviewer's static site: OHIF v3's prebuilt application, installed
//! by `deploy/ohif/install.sh` into `[upstream] ohif_dir` and served by
//! espace-ps itself under [`PREFIX`] (docs/viewer-ohif.md).
//!
//! Only requests the gate has already let through (a session, the route
//! table's `shell` class) reach [`Site::serve`]. The files carry no patient
//! data: hashed bundles are cacheable, the rest is revalidated. Every answer
//! gets the route table's Content-Security-Policy (workers take theirs from
//! their script's response); `index.html` gets the portal's head elements
//! and banner, with a nonce of its own, as the viewer's pages do.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use espace_ps_http::Cache;
use http::{header, HeaderValue, StatusCode};

use super::Forward;
use crate::web::{self, Resp};

/// Where the site is served (the route table's `shell` routes and
/// `study_page` name the same prefix).
pub const PREFIX: &str = "/visionneuse/";

/// The installed site, read from disk at each request (the kernel's page
/// cache keeps it; an install replaces the directory as a whole).
pub struct Site {
    root: PathBuf,
    hide_download: Vec<String>,
}

impl Site {
    pub fn new(root: impl Into<PathBuf>, hide_download: Vec<String>) -> Site {
        Site {
            root: root.into(),
            hide_download,
        }
    }

    /// Whether the site answers this (canonical) target.
    pub fn serves(target: &str) -> bool {
        let path = target.split('?').next().unwrap_or("");
        path.starts_with(PREFIX) || path == PREFIX.trim_end_matches('/')
    }

    /// The file of a path under [`PREFIX`]; a path without an extension is
    /// one of the application's own routes (`/visionneuse/viewer`): its
    /// `index.html`. None for anything that could leave the directory.
    pub fn file_of(&self, target: &str) -> Option<PathBuf> {
        let path = target.split('?').next().unwrap_or("");
        let rest = path
            .strip_prefix(PREFIX)
            .or_else(|| (path == PREFIX.trim_end_matches('/')).then_some(""))?;
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        if segments
            .iter()
            .any(|s| s.starts_with('.') || s.contains('\\') || s.contains('%') || s.contains('\0'))
        {
            return None;
        }
        match segments.last() {
            Some(last) if last.contains('.') => {
                let mut p = self.root.clone();
                p.extend(&segments);
                Some(p)
            }
            _ => Some(self.root.join("index.html")),
        }
    }

    /// Answers a request the gate forwarded. A file other than a page has
    /// a validator (`ETag`), and a request whose `If-None-Match` names it is
    /// answered 304 without the file: what the browser revalidates
    /// (`app-config.js`, stylesheets) is not downloaded again at each
    /// opening.
    pub async fn serve(
        &self,
        head_only: bool,
        if_none_match: Option<&str>,
        forward: &Forward,
    ) -> Resp {
        let Some(file) = self.file_of(&forward.target) else {
            return not_found();
        };
        let content_type = content_type_of(&file);
        let is_html = content_type.starts_with("text/html");
        let etag = if is_html {
            None
        } else {
            match tokio::fs::metadata(&file).await {
                Ok(meta) if meta.is_file() => etag_of(&meta),
                _ => return not_found(),
            }
        };
        let not_modified =
            matches!((&etag, if_none_match), (Some(tag), Some(inm)) if names(inm, tag));
        let body = if not_modified {
            Vec::new()
        } else {
            match tokio::fs::read(&file).await {
                Ok(b) => b,
                Err(_) => return not_found(),
            }
        };
        let nonce = if is_html {
            crate::inject::new_nonce()
        } else {
            String::new()
        };
        let body = if is_html {
            let html = String::from_utf8_lossy(&body);
            Bytes::from(crate::inject::inject(
                &html,
                forward.may_download,
                &self.hide_download,
                &nonce,
            ))
        } else {
            Bytes::from(body)
        };
        let len = body.len();
        let mut resp = http::Response::new(if head_only { Bytes::new() } else { body });
        if not_modified {
            *resp.status_mut() = StatusCode::NOT_MODIFIED;
        }
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        web::security_headers(h, cache_of(&file, is_html));
        if !not_modified {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
        if let Some(Ok(v)) = etag.map(HeaderValue::try_from) {
            h.insert(header::ETAG, v);
        }
        h.remove("content-security-policy");
        h.remove("x-frame-options");
        if let Ok(v) = HeaderValue::from_str(&forward.csp.header_value(&nonce)) {
            h.insert(forward.csp.header_name(), v);
        }
        if let Some(Ok(v)) = forward
            .csp
            .enforced_in_report_only()
            .map(|e| HeaderValue::from_str(&e))
        {
            h.insert("content-security-policy", v);
        }
        resp
    }
}

/// A weak validator of a file as installed: its size and modification
/// time (an install writes new files).
fn etag_of(meta: &std::fs::Metadata) -> Option<String> {
    let modified = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some(format!("W/\"{:x}-{:x}\"", meta.len(), modified.as_nanos()))
}

/// Whether an `If-None-Match` value names `etag` (weak comparison, as
/// RFC 9110 asks for it; `*` names any).
fn names(if_none_match: &str, etag: &str) -> bool {
    let opaque = |t: &str| t.trim().strip_prefix("W/").unwrap_or(t.trim()).to_owned();
    if_none_match.trim() == "*" || if_none_match.split(',').any(|t| opaque(t) == opaque(etag))
}

fn not_found() -> Resp {
    web::text(StatusCode::NOT_FOUND, "Fichier introuvable.\n")
}

/// Bundles, chunks and WASM carry a content hash in their name: cacheable.
/// `index.html` (a nonce per answer) is never stored; the rest (`app-config.js`,
/// icons) is revalidated.
fn cache_of(file: &Path, is_html: bool) -> Cache {
    if is_html {
        return Cache::NoStore;
    }
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let hashed = name
        .split('.')
        .any(|part| part.len() == 16 && part.bytes().all(|b| b.is_ascii_hexdigit()));
    if hashed {
        Cache::Public
    } else {
        Cache::Revalidate
    }
}

fn content_type_of(file: &Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "ttf" => "font/ttf",
        "xml" => "application/xml",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_site() {
        let s = Site::new("/srv/ohif", vec![]);
        let f = |t: &str| s.file_of(t).map(|p| p.display().to_string());
        assert_eq!(
            f("/visionneuse/app.bundle.js").as_deref(),
            Some("/srv/ohif/app.bundle.js")
        );
        assert_eq!(
            f("/visionneuse/assets/a.png").as_deref(),
            Some("/srv/ohif/assets/a.png")
        );
        // The application's own routes are its index.html.
        assert_eq!(
            f("/visionneuse/viewer?StudyInstanceUIDs=1.2").as_deref(),
            Some("/srv/ohif/index.html")
        );
        assert_eq!(f("/visionneuse/").as_deref(), Some("/srv/ohif/index.html"));
        assert_eq!(f("/visionneuse").as_deref(), Some("/srv/ohif/index.html"));
        for bad in [
            "/visionneuse/../etc/passwd",
            "/visionneuse/a/../../x.js",
            "/visionneuse/.espace-ps-ohif",
            "/visionneuse/%2e%2e/x.js",
            "/visionneuse/a\\..\\x.js",
            "/dicom-web/studies",
        ] {
            assert_eq!(f(bad), None, "{bad}");
        }
        assert!(Site::serves("/visionneuse/viewer?x=1"));
        assert!(!Site::serves("/visionneusex/a.js"));
    }

    #[test]
    fn if_none_match_names_a_validator() {
        let tag = "W/\"2a-17\"";
        for yes in [tag, "\"2a-17\"", "\"x\", W/\"2a-17\"", " * "] {
            assert!(names(yes, tag), "{yes}");
        }
        for no in ["", "W/\"2a-18\"", "\"2a\"", "2a-17"] {
            assert!(!names(no, tag), "{no}");
        }
    }

    #[test]
    fn hashed_bundles_are_cacheable_the_page_never() {
        assert_eq!(
            cache_of(Path::new("app.bundle.0f6159c501addfe9.js"), false),
            Cache::Public
        );
        assert_eq!(
            cache_of(Path::new("0ddf166f7a343eda.wasm"), false),
            Cache::Public
        );
        assert_eq!(
            cache_of(Path::new("app-config.js"), false),
            Cache::Revalidate
        );
        assert_eq!(cache_of(Path::new("index.html"), true), Cache::NoStore);
        assert_eq!(content_type_of(Path::new("x.wasm")), "application/wasm");
    }
}
