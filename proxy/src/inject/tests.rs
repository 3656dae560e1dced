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

/// Feeds `page` in chunks of `n` bytes; the concatenated output.
fn streamed(encoding: Encoding, page: &[u8], n: usize) -> String {
    let mut r = PageRewriter::new(encoding, false, &["a.download".into()], "TjBuY2U=");
    let mut out = Vec::new();
    for chunk in page.chunks(n) {
        out.extend(r.write(chunk).unwrap());
    }
    out.extend(r.end().unwrap());
    assert!(r.end().unwrap().is_empty(), "one end only");
    String::from_utf8(out).unwrap()
}

#[test]
fn a_head_in_a_comment_or_a_script_is_not_where_we_inject() {
    let page = "<!DOCTYPE html><!-- <head><body> --><html><head><script>var s = \"<head><body>\";</script>\
                <title>V</title><style>/* <body> */</style></head>\
                <body><textarea><body></textarea><p>x</p></body></html>";
    let out = inject(page, true, &[], "TjBuY2U=");
    assert_eq!(out.matches("rel=\"manifest\"").count(), 1, "{out}");
    assert_eq!(out.matches("espace-ps-bandeau\" role").count(), 1, "{out}");
    assert!(
        out.contains("<!-- <head><body> --><html><head><link rel=\"manifest\""),
        "{out}"
    );
    assert!(
        out.contains("<script>var s = \"<head><body>\";</script>"),
        "{out}"
    );
    assert!(out.contains("<style>/* <body> */</style>"), "{out}");
    assert!(
        out.contains("</head><body><div id=\"espace-ps-bandeau\""),
        "{out}"
    );
    assert!(out.contains("<textarea><body></textarea>"), "{out}");
    // Only what we add changed.
    let added = out.len() - page.len();
    assert_eq!(added, inject("", true, &[], "TjBuY2U=").len(), "{out}");
}

#[test]
fn a_header_element_is_not_a_head() {
    let out = inject(
        "<html><body><header>h</header></body></html>",
        true,
        &[],
        "TjBuY2U=",
    );
    assert!(
        out.starts_with("<html><body><link rel=\"manifest\""),
        "head elements after <body>, not inside <header>: {out}"
    );
    assert!(out.contains("</div><header>h</header>"), "{out}");
}

#[test]
fn a_page_without_body_gets_the_header_at_its_end() {
    let out = inject(
        "<html><head><title>V</title></head></html>",
        true,
        &[],
        "TjBuY2U=",
    );
    assert!(
        out.starts_with("<html><head><link rel=\"manifest\""),
        "{out}"
    );
    assert!(out.ends_with("</html><div id=\"espace-ps-bandeau\" role=\"navigation\" aria-label=\"Espace professionnel de santé\"><a href=\"/\">Retour au portail</a><a href=\"/auth/logout\">Se déconnecter</a></div>"), "{out}");
}

#[test]
fn pages_stream_chunk_by_chunk_as_they_do_whole() {
    let whole = inject(PAGE, false, &["a.download".into()], "TjBuY2U=");
    for n in [1, 3, 7, 64, PAGE.len()] {
        assert_eq!(
            streamed(Encoding::Identity, PAGE.as_bytes(), n),
            whole,
            "chunks of {n}"
        );
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(PAGE.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(PAGE.as_bytes()).unwrap();
    let z = z.finish().unwrap();
    for n in [1, 5, 4096] {
        assert_eq!(
            streamed(Encoding::Gzip, &gz, n),
            whole,
            "gzip, chunks of {n}"
        );
        assert_eq!(
            streamed(Encoding::Deflate, &z, n),
            whole,
            "deflate, chunks of {n}"
        );
    }
    let mut r = PageRewriter::new(Encoding::Gzip, true, &[], "TjBuY2U=");
    assert!(
        r.write(b"not gzip at all").is_err() || r.end().is_err(),
        "a body that does not decode is an error"
    );
}

#[test]
fn output_is_held_only_until_our_head_elements_are_in() {
    let mut r = PageRewriter::new(Encoding::Identity, true, &[], "TjBuY2U=");
    assert!(r.write(b"<!DOCTYPE html><html>").unwrap().is_empty());
    let first = String::from_utf8(r.write(b"<head><title>V</title>").unwrap()).unwrap();
    assert!(
        first.starts_with("<!DOCTYPE html><html><head><link rel=\"manifest\""),
        "{first}"
    );
    let next = r.write(b"</head><body><p>x</p>").unwrap();
    assert!(!next.is_empty(), "streams once the head is in");
    // Neither head nor body within MAX_HTML: the page goes through as is.
    let mut r = PageRewriter::new(Encoding::Identity, true, &[], "TjBuY2U=");
    let filler = "<p>x</p>".repeat(MAX_HTML / 8 + 1);
    let out = r.write(filler.as_bytes()).unwrap();
    assert_eq!(out.len(), filler.len(), "given up holding past MAX_HTML");
    let rest = r.write(b"<p>y</p>").unwrap();
    assert_eq!(rest, b"<p>y</p>");
    assert!(r.end().unwrap().is_empty());
}

#[test]
fn long_pages_go_through_unchanged_around_what_we_add() {
    let pad = "<!-- <body> -->".repeat(300);
    let tail = "<p>é</p><script>document.write('<body>')</script>".repeat(200);
    let page = format!("<html><head>{pad}</head><body class=v>{tail}</body></html>");
    let head = head_elements(false, &["a.download".into()], "TjBuY2U=");
    let want = format!("<html><head>{head}{pad}</head><body class=v>{BANNER}{tail}</body></html>");
    assert_eq!(
        inject(&page, false, &["a.download".into()], "TjBuY2U="),
        want
    );
    for n in [1, 100, 1000, 1024, 4096, page.len()] {
        assert_eq!(
            streamed(Encoding::Identity, page.as_bytes(), n),
            want,
            "chunks of {n}"
        );
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(page.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    for n in [7, 512, gz.len()] {
        assert_eq!(
            streamed(Encoding::Gzip, &gz, n),
            want,
            "gzip, chunks of {n}"
        );
    }
}

fn with_downloads(downloads: &[DownloadLink], chunk: usize) -> String {
    let mut r = PageRewriter::with_downloads(Encoding::Identity, false, &[], "TjBuY2U=", downloads);
    let mut out = Vec::new();
    for c in PAGE.as_bytes().chunks(chunk) {
        out.extend(r.write(c).unwrap());
    }
    out.extend(r.end().unwrap());
    String::from_utf8(out).unwrap()
}

fn link(label: &str, href: &str) -> DownloadLink {
    DownloadLink {
        label: label.into(),
        href: href.into(),
    }
}

#[test]
fn no_download_link_without_a_series_to_download() {
    let out = with_downloads(&[], 7);
    assert!(!out.contains("Télécharger"), "{out}");
    assert_eq!(out, inject(PAGE, false, &[], "TjBuY2U="));
}

#[test]
fn one_series_is_one_download_link_in_the_header() {
    for chunk in [1, 5, 4096] {
        let out = with_downloads(
            &[link("CT – THORAX (12 images)", "/series/abc/archive")],
            chunk,
        );
        assert!(
            out.contains(
                "<a href=\"/\">Retour au portail</a><a class=\"espace-ps-telecharger\" \
                 href=\"/series/abc/archive\" download title=\"CT – THORAX (12 images)\">\
                 Télécharger la série (DICOM)</a><a href=\"/auth/logout\">"
            ),
            "{out}"
        );
        assert!(out.find("<Body class=x>").unwrap() < out.find("Télécharger").unwrap());
    }
}

/// Several series: a list under "Télécharger la série (DICOM)"; what the
/// archive says of a series (its description) is text, never markup.
#[test]
fn several_series_are_a_list_and_their_labels_are_escaped() {
    let out = with_downloads(
        &[
            link("MR – <img src=x onerror=alert(1)>", "/series/a/archive"),
            link("MR – T2 \"axial\"", "/series/b/archive?x=1&y=2"),
        ],
        3,
    );
    assert!(
        out.contains(
            "<details id=\"espace-ps-series\"><summary>Télécharger la série (DICOM)</summary><ul>"
        ),
        "{out}"
    );
    assert!(
        out.contains(">MR – &lt;img src=x onerror=alert(1)&gt;</a></li>"),
        "{out}"
    );
    assert!(
        out.contains(
            "href=\"/series/b/archive?x=1&amp;y=2\" download>MR – T2 &quot;axial&quot;</a>"
        ),
        "{out}"
    );
    assert!(!out.contains("<img"), "{out}");
}
