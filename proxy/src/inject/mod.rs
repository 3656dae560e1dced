//! What espace-ps adds to the viewer's HTML pages as they go through: the
//! PWA manifest link and theme color (the viewer is part of the installed
//! app), a small portal header (back to the portal, logout), and, for a
//! professional without the download habilitation, a style that hides the
//! viewer's download controls (the server-side refusal is what counts);
//! for one with it, "Télécharger la série (DICOM)": the series of the
//! study the page shows, each a link to its ZIP of DICOM files (what the
//! viewer gate found for the page, [`DownloadLink`]).
//!
//! Pages are rewritten as they stream, chunk by chunk, by `lol_html`
//! (Cloudflare's streaming HTML rewriter): our head elements go right after
//! the page's `<head>` start tag and the header right after `<body>`, as
//! the HTML tokenizer sees them, so a `<head>` written in a comment, a
//! script, a style or an attribute is not where we inject. A page without
//! `<head>` gets both after `<body>`; a page without `<body>` gets the
//! header at its end; a page with neither is held back (at most
//! [`MAX_HTML`]) and gets both in front. gzip and deflate bodies are decoded
//! on the way (the page then goes out uncompressed).
//!
//! Every element added carries the response's CSP nonce (see
//! `Csp::header_value`), and none needs an inline event handler: the
//! viewer's policy refuses `'unsafe-inline'` for scripts.
use std::borrow::Cow;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use lol_html::html_content::ContentType;
use lol_html::send::{Element, ElementContentHandlers, HtmlRewriter, Settings};
use lol_html::{OutputSink, Selector};
use parking_lot::Mutex;

/// The most of a page held back while neither its `<head>` nor its
/// `<body>` has been seen; past that the page goes through as is.
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

    /// A whole body, decoded (by the same streaming decoder pages go through).
    pub fn decode(self, body: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut d = Decoder::new(self);
        let mut out = d.write(body)?.into_owned();
        out.extend(d.finish()?);
        Ok(out)
    }
}

/// Decodes a body chunk by chunk.
enum Decoder {
    Identity,
    Gzip(flate2::write::MultiGzDecoder<Vec<u8>>),
    Deflate(flate2::write::ZlibDecoder<Vec<u8>>),
}

impl Decoder {
    fn new(encoding: Encoding) -> Decoder {
        match encoding {
            Encoding::Identity => Decoder::Identity,
            Encoding::Gzip => Decoder::Gzip(flate2::write::MultiGzDecoder::new(Vec::new())),
            Encoding::Deflate => Decoder::Deflate(flate2::write::ZlibDecoder::new(Vec::new())),
        }
    }

    /// What `chunk` decodes to so far.
    fn write<'a>(&mut self, chunk: &'a [u8]) -> std::io::Result<Cow<'a, [u8]>> {
        Ok(match self {
            Decoder::Identity => Cow::Borrowed(chunk),
            Decoder::Gzip(d) => {
                d.write_all(chunk)?;
                Cow::Owned(std::mem::take(d.get_mut()))
            }
            Decoder::Deflate(d) => {
                d.write_all(chunk)?;
                Cow::Owned(std::mem::take(d.get_mut()))
            }
        })
    }

    /// The rest, at the end of the body.
    fn finish(&mut self) -> std::io::Result<Vec<u8>> {
        Ok(match self {
            Decoder::Identity => Vec::new(),
            Decoder::Gzip(d) => {
                d.try_finish()?;
                std::mem::take(d.get_mut())
            }
            Decoder::Deflate(d) => {
                d.try_finish()?;
                std::mem::take(d.get_mut())
            }
        })
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

/// The portal header, after `<body…>`, without downloads.
const BANNER: &str = "<div id=\"espace-ps-bandeau\" role=\"navigation\" aria-label=\"Espace professionnel de santé\">\
                      <a href=\"/\">Retour au portail</a><a href=\"/auth/logout\">Se déconnecter</a></div>";

/// A series the banner offers to download: a link to its ZIP of DICOM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadLink {
    /// What the link says, e.g. "CT – THORAX (120 images)".
    pub label: String,
    /// The viewer request that answers the ZIP (origin-form).
    pub href: String,
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The portal header: [`BANNER`], with "Télécharger la série (DICOM)"
/// when there is a series to download (one link; several: a list under
/// that title).
fn banner(downloads: &[DownloadLink]) -> Cow<'static, str> {
    const LABEL: &str = "Télécharger la série (DICOM)";
    let links = match downloads {
        [] => return Cow::Borrowed(BANNER),
        [one] => format!(
            "<a class=\"espace-ps-telecharger\" href=\"{}\" download title=\"{}\">{LABEL}</a>",
            escape(&one.href),
            escape(&one.label),
        ),
        several => {
            let items: String = several
                .iter()
                .map(|d| {
                    format!(
                        "<li><a class=\"espace-ps-telecharger\" href=\"{}\" download>{}</a></li>",
                        escape(&d.href),
                        escape(&d.label)
                    )
                })
                .collect();
            format!("<details id=\"espace-ps-series\"><summary>{LABEL}</summary><ul>{items}</ul></details>")
        }
    };
    Cow::Owned(format!(
        "<div id=\"espace-ps-bandeau\" role=\"navigation\" aria-label=\"Espace professionnel de santé\">\
         <a href=\"/\">Retour au portail</a>{links}<a href=\"/auth/logout\">Se déconnecter</a></div>"
    ))
}

/// Our head elements, after `<head…>`, each with the response's nonce.
fn head_elements(may_download: bool, hide_download: &[String], nonce: &str) -> String {
    let mut head = format!(
        "<link rel=\"manifest\" href=\"/manifest.webmanifest\" nonce=\"{nonce}\">\
         <meta name=\"theme-color\" content=\"#000091\">\
         <style nonce=\"{nonce}\">#espace-ps-bandeau{{position:fixed;top:0;right:0;z-index:2147483647;\
         display:flex;gap:.75rem;padding:.35rem .75rem;background:#000091;color:#fff;\
         font:14px system-ui,Arial,sans-serif;border-bottom-left-radius:6px}}\
         #espace-ps-bandeau a{{color:#fff}}#espace-ps-bandeau summary{{cursor:pointer}}\
         #espace-ps-bandeau ul{{margin:.25rem 0 0;padding-left:1.1rem}}</style>",
    );
    let selectors = escape_css_selector_list(hide_download);
    if !may_download && !selectors.is_empty() {
        head.push_str(&format!(
            "<style nonce=\"{nonce}\">{selectors}{{display:none !important}}</style>"
        ));
    }
    head
}

static HEAD: LazyLock<Selector> = LazyLock::new(|| "head".parse().expect("static selector"));
static BODY: LazyLock<Selector> = LazyLock::new(|| "body".parse().expect("static selector"));

/// What the rewriter's handlers and its output share with [`PageRewriter`].
#[derive(Default)]
struct Shared {
    /// Rewritten bytes not handed on yet.
    out: Mutex<Vec<u8>>,
    /// Every byte the rewriter has written out so far.
    out_total: AtomicUsize,
    /// The bytes of ours among them.
    inserted: AtomicUsize,
    /// Our head elements are in.
    head_done: AtomicBool,
    /// The portal header is in.
    body_done: AtomicBool,
}

struct Sink(Arc<Shared>);

impl OutputSink for Sink {
    fn handle_chunk(&mut self, chunk: &[u8]) {
        self.0.out_total.fetch_add(chunk.len(), Ordering::Relaxed);
        self.0.out.lock().extend_from_slice(chunk);
    }
}

/// A rewriting failure: the page cannot go on (the caller answers 502 or
/// cuts the connection, the status being sent already).
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    #[error("viewer page does not decode: {0}")]
    Decode(#[from] std::io::Error),
    #[error("viewer page cannot be rewritten: {0}")]
    Rewrite(#[from] lol_html::errors::RewritingError),
}

/// One viewer HTML page being rewritten as it streams.
///
/// Once the header is in (after `<body>`), the rest of the page needs no
/// tokenizing: the rewriter is dropped and the bytes it had not written out
/// yet, then every later chunk, go on as they are. What it had not written
/// out is known by count: its output is its input plus what we added.
pub struct PageRewriter {
    /// A mutex only so that the request context is `Sync`; reached through
    /// `get_mut`, never locked.
    inner: Mutex<Option<Inner>>,
}

struct Inner {
    decoder: Decoder,
    /// None once the header is in: the rest goes through as is.
    html: Option<HtmlRewriter<'static, Sink>>,
    shared: Arc<Shared>,
    head: Arc<str>,
    /// The portal header.
    banner: Arc<str>,
    /// Output is held back until our head elements are in (or the page
    /// gave no place for them within [`MAX_HTML`]).
    holding: bool,
    /// The input given to the rewriter that it has not written out yet,
    /// from input offset `written`.
    pending: Vec<u8>,
    written: usize,
}

impl PageRewriter {
    pub fn new(
        encoding: Encoding,
        may_download: bool,
        hide_download: &[String],
        nonce: &str,
    ) -> PageRewriter {
        PageRewriter::with_downloads(encoding, may_download, hide_download, nonce, &[])
    }

    /// The same, with series to offer for download in the header.
    pub fn with_downloads(
        encoding: Encoding,
        may_download: bool,
        hide_download: &[String],
        nonce: &str,
        downloads: &[DownloadLink],
    ) -> PageRewriter {
        let shared = Arc::new(Shared::default());
        let head: Arc<str> = head_elements(may_download, hide_download, nonce).into();
        let banner: Arc<str> = banner(downloads).into();
        let on_head = {
            let (shared, head) = (shared.clone(), head.clone());
            move |el: &mut Element<'_, '_>| {
                if !shared.head_done.swap(true, Ordering::Relaxed) {
                    el.prepend(&head, ContentType::Html);
                    shared.inserted.fetch_add(head.len(), Ordering::Relaxed);
                }
                Ok(())
            }
        };
        let on_body = {
            let (shared, head, banner) = (shared.clone(), head.clone(), banner.clone());
            move |el: &mut Element<'_, '_>| {
                if !shared.body_done.swap(true, Ordering::Relaxed) {
                    el.prepend(&banner, ContentType::Html);
                    shared.inserted.fetch_add(banner.len(), Ordering::Relaxed);
                    if !shared.head_done.swap(true, Ordering::Relaxed) {
                        // Prepended before the header.
                        el.prepend(&head, ContentType::Html);
                        shared.inserted.fetch_add(head.len(), Ordering::Relaxed);
                    }
                }
                Ok(())
            }
        };
        let settings = Settings::new_send()
            .with_strict(false)
            .append_element_content_handler((
                Cow::Borrowed(&*HEAD),
                ElementContentHandlers::default().element(on_head),
            ))
            .append_element_content_handler((
                Cow::Borrowed(&*BODY),
                ElementContentHandlers::default().element(on_body),
            ));
        let html = HtmlRewriter::new(settings, Sink(shared.clone()));
        PageRewriter {
            inner: Mutex::new(Some(Inner {
                decoder: Decoder::new(encoding),
                html: Some(html),
                shared,
                head,
                banner,
                holding: true,
                pending: Vec::new(),
                written: 0,
            })),
        }
    }

    /// The rewritten bytes of one more chunk of the body (maybe none yet).
    pub fn write(&mut self, chunk: &[u8]) -> Result<Vec<u8>, InjectError> {
        let Some(inner) = self.inner.get_mut() else {
            return Ok(Vec::new());
        };
        let decoded = inner.decoder.write(chunk)?;
        inner.feed(&decoded)
    }

    /// The rest of the page, at the end of the body. Later calls give
    /// nothing.
    pub fn end(&mut self) -> Result<Vec<u8>, InjectError> {
        let Some(mut inner) = self.inner.get_mut().take() else {
            return Ok(Vec::new());
        };
        let rest = inner.decoder.finish()?;
        let mut out = inner.feed(&rest)?;
        let Some(html) = inner.html.take() else {
            return Ok(out);
        };
        html.end()?;
        let mut held = std::mem::take(&mut *inner.shared.out.lock());
        let head_done = inner.shared.head_done.load(Ordering::Relaxed);
        if inner.holding && !head_done {
            // Neither <head> nor <body>: ours go in front.
            out.reserve(inner.head.len() + inner.banner.len() + held.len());
            out.extend_from_slice(inner.head.as_bytes());
            out.extend_from_slice(inner.banner.as_bytes());
        }
        out.append(&mut held);
        if head_done && !inner.shared.body_done.load(Ordering::Relaxed) {
            // A <head> and no <body>: the header goes last.
            out.extend_from_slice(inner.banner.as_bytes());
        }
        Ok(out)
    }
}

/// The rewriter is given at most this much at a time, so that it stops
/// soon after `<body>`.
const SLICE: usize = 1024;

impl Inner {
    /// Gives `input` to the rewriter, a slice at a time, until the header
    /// is in; what may go now.
    fn feed(&mut self, input: &[u8]) -> Result<Vec<u8>, InjectError> {
        let mut out = Vec::new();
        let mut rest = input;
        while let Some(html) = self.html.as_mut() {
            if rest.is_empty() {
                return Ok(out);
            }
            let (now, later) = rest.split_at(rest.len().min(SLICE));
            rest = later;
            self.pending.extend_from_slice(now);
            html.write(now)?;
            out.append(&mut self.take());
            // The input offset up to which the rewriter wrote out.
            let through = self.shared.out_total.load(Ordering::Relaxed)
                - self.shared.inserted.load(Ordering::Relaxed);
            let done = through - self.written;
            if self.shared.body_done.load(Ordering::Relaxed) && !self.holding {
                out.extend_from_slice(&self.pending[done..]);
                self.html = None;
                self.pending = Vec::new();
            } else {
                self.pending.drain(..done);
                self.written = through;
            }
        }
        out.extend_from_slice(rest);
        Ok(out)
    }

    /// The output that may go now.
    fn take(&mut self) -> Vec<u8> {
        let mut out = self.shared.out.lock();
        if self.holding {
            if !self.shared.head_done.load(Ordering::Relaxed) && out.len() <= MAX_HTML {
                return Vec::new();
            }
            self.holding = false;
        }
        std::mem::take(&mut *out)
    }
}

/// Rewrites a whole page at once (tests, benchmarks): [`PageRewriter`] fed
/// one chunk.
pub fn inject(html: &str, may_download: bool, hide_download: &[String], nonce: &str) -> String {
    let mut r = PageRewriter::new(Encoding::Identity, may_download, hide_download, nonce);
    let mut out = r.write(html.as_bytes()).expect("identity pages rewrite");
    out.extend(r.end().expect("identity pages rewrite"));
    String::from_utf8(out).expect("UTF-8 in, UTF-8 out")
}

#[cfg(test)]
mod tests;
