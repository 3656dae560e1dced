//! What espace-ps adds to the viewer's HTML pages as they go through: the
//! PWA manifest link and theme color (the viewer is part of the installed
//! app), a small portal header (back to the portal, logout), and, for a
//! professional without the download habilitation, a style that hides the
//! viewer's download controls (the server-side refusal is what counts).
//!
//! Every element added carries the response's CSP nonce (see
//! `Csp::header_value`), and none needs an inline event handler: the
//! viewer's policy refuses `'unsafe-inline'` for scripts.

use std::io::Read;

/// The most of an HTML page that is buffered to be rewritten.
pub const MAX_HTML: usize = 4 * 1024 * 1024;

/// How the viewer's body is encoded, as far as rewriting goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    Deflate,
}

impl Encoding {
    /// None: an encoding we do not rewrite (the page then goes through as is).
    pub fn of(content_encoding: Option<&str>) -> Option<Encoding> {
        match content_encoding.map(|e| e.trim().to_ascii_lowercase()) {
            None => Some(Encoding::Identity),
            Some(e) if e.is_empty() || e == "identity" => Some(Encoding::Identity),
            Some(e) if e == "gzip" || e == "x-gzip" => Some(Encoding::Gzip),
            Some(e) if e == "deflate" => Some(Encoding::Deflate),
            Some(_) => None,
        }
    }

    pub fn decode(self, body: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        match self {
            Encoding::Identity => out.extend_from_slice(body),
            Encoding::Gzip => {
                flate2::read::MultiGzDecoder::new(body)
                    .take(MAX_HTML as u64 * 4)
                    .read_to_end(&mut out)?;
            }
            Encoding::Deflate => {
                flate2::read::ZlibDecoder::new(body)
                    .take(MAX_HTML as u64 * 4)
                    .read_to_end(&mut out)?;
            }
        }
        Ok(out)
    }
}

fn escape_css_selector_list(selectors: &[String]) -> String {
    selectors
        .iter()
        .filter(|s| !s.contains(['{', '}', '<', '>']))
        .cloned()
        .collect::<Vec<_>>()
        .join(", ")
}

/// A fresh CSP nonce for one response: 128 random bits, base64.
pub fn new_nonce() -> String {
    use base64::Engine as _;
    use rand_core::RngCore;
    let mut b = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Adds our head elements after `<head…>` and the portal header after
/// `<body…>` (case-insensitive); a page without them gets them in front.
/// `nonce` (base64, from [`new_nonce`]) goes on every element added.
pub fn inject(html: &str, may_download: bool, hide_download: &[String], nonce: &str) -> String {
    let mut head = format!(
        "<link rel=\"manifest\" href=\"/manifest.webmanifest\" nonce=\"{nonce}\">\
         <meta name=\"theme-color\" content=\"#000091\">\
         <style nonce=\"{nonce}\">#espace-ps-bandeau{{position:fixed;top:0;right:0;z-index:2147483647;\
         display:flex;gap:.75rem;padding:.35rem .75rem;background:#000091;color:#fff;\
         font:14px system-ui,Arial,sans-serif;border-bottom-left-radius:6px}}\
         #espace-ps-bandeau a{{color:#fff}}</style>",
    );
    let selectors = escape_css_selector_list(hide_download);
    if !may_download && !selectors.is_empty() {
        head.push_str(&format!(
            "<style nonce=\"{nonce}\">{selectors}{{display:none !important}}</style>"
        ));
    }
    let banner = "<div id=\"espace-ps-bandeau\" role=\"navigation\" aria-label=\"Espace professionnel de santé\">\
                  <a href=\"/\">Retour au portail</a><a href=\"/auth/logout\">Se déconnecter</a></div>";
    let lower = html.to_ascii_lowercase();
    let after_tag = |tag: &str| {
        let start = lower.find(tag)?;
        let end = lower[start..].find('>')? + start + 1;
        Some(end)
    };
    let mut out = String::with_capacity(html.len() + head.len() + banner.len());
    match (after_tag("<head"), after_tag("<body")) {
        (Some(h), Some(b)) if h <= b => {
            out.push_str(&html[..h]);
            out.push_str(&head);
            out.push_str(&html[h..b]);
            out.push_str(banner);
            out.push_str(&html[b..]);
        }
        (_, Some(b)) => {
            out.push_str(&html[..b]);
            out.push_str(&head);
            out.push_str(banner);
            out.push_str(&html[b..]);
        }
        _ => {
            out.push_str(&head);
            out.push_str(banner);
            out.push_str(html);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const PAGE: &str = "<!DOCTYPE html><html><HEAD><title>V</title></HEAD><Body class=x><button title=\"Download DICOM\"></button></Body></html>";

    #[test]
    fn manifest_and_header_are_injected() {
        let out = inject(
            PAGE,
            true,
            &["button[title=\"Download DICOM\"]".into()],
            "TjBuY2U=",
        );
        let head = out.find("<link rel=\"manifest\"").unwrap();
        assert!(out.find("<HEAD>").unwrap() < head && head < out.find("<title>").unwrap());
        let banner = out.find("espace-ps-bandeau\" role").unwrap();
        assert!(out.find("<Body class=x>").unwrap() < banner);
        assert!(
            !out.contains("display:none !important"),
            "may download: nothing hidden"
        );
    }

    #[test]
    fn download_controls_hidden_without_habilitation() {
        let out = inject(
            PAGE,
            false,
            &["button[title=\"Download DICOM\"]".into(), "a{}<x".into()],
            "TjBuY2U=",
        );
        assert!(out.contains(
            "<style nonce=\"TjBuY2U=\">button[title=\"Download DICOM\"]{display:none !important}</style>"
        ));
        assert!(!out.contains("a{}<x"));
    }

    #[test]
    fn every_added_element_carries_the_nonce_and_no_inline_handler() {
        let out = inject(PAGE, false, &["a.download".into()], "TjBuY2U=");
        let added = &out[..out.find("<title>").unwrap()];
        for tag in ["<style", "<link", "<script"] {
            for (i, _) in added.match_indices(tag) {
                let end = added[i..].find('>').unwrap() + i;
                assert!(
                    added[i..end].contains("nonce=\"TjBuY2U=\""),
                    "{tag} without the nonce: {}",
                    &added[i..=end]
                );
            }
        }
        assert_eq!(added.matches("nonce=\"TjBuY2U=\"").count(), 3, "{added}");
        let lower = out.to_ascii_lowercase();
        assert!(
            !lower.contains(" onclick=")
                && !lower.contains(" onload=")
                && !lower.contains("javascript:"),
            "no inline handler in what we add: {out}"
        );
        assert_ne!(new_nonce(), new_nonce());
        assert_eq!(new_nonce().len(), 24);
    }

    #[test]
    fn pages_without_head_or_body() {
        let out = inject("<p>x</p>", true, &[], "TjBuY2U=");
        assert!(out.starts_with("<link rel=\"manifest\""));
        assert!(out.ends_with("<p>x</p>"));
    }

    #[test]
    fn gzip_and_deflate_bodies_decode() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(PAGE.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(Encoding::Gzip.decode(&gz).unwrap(), PAGE.as_bytes());
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(PAGE.as_bytes()).unwrap();
        assert_eq!(
            Encoding::Deflate.decode(&z.finish().unwrap()).unwrap(),
            PAGE.as_bytes()
        );
        assert_eq!(Encoding::of(Some("br")), None);
        assert_eq!(Encoding::of(Some("GZIP")), Some(Encoding::Gzip));
    }
}
