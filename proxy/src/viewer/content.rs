//! What may flow back from the viewer: the response media types that carry
//! DICOM bytes, archives or bulk data, cut for a request forwarded without
//! the download permission (defense in depth behind the route table).

use espace_ps_access::viewer::Class;

/// Whether a response's Content-Type carries DICOM bytes or an archive.
pub fn is_dicom_content(content_type: &str) -> bool {
    let ct = content_type.to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or("").trim();
    matches!(
        essence,
        "application/dicom"
            | "application/x-dicom"
            | "application/zip"
            | "application/x-zip"
            | "application/x-zip-compressed"
            | "application/dicom+zip"
    ) || (essence == "multipart/related" && ct.contains("application/dicom"))
}

/// Media types of bulk bytes, compressed files and documents: what Orthanc
/// answers for raw element values (`/content/…`, the encapsulated PDF),
/// attachments (`compressed-data`), raw frames, NumPy dumps and `/pdf`.
const BULK_ESSENCES: &[&str] = &[
    "application/octet-stream",
    "application/gzip",
    "application/x-gzip",
    "application/pdf",
];

/// Whether a response's Content-Type carries bulk bytes, a compressed file
/// or a document (see [`BULK_ESSENCES`]), alone or as the parts of a
/// multipart body. DICOMweb frames for display
/// (`multipart/related; type="application/octet-stream"`) are not: a viewer
/// needs them to show the images.
fn is_bulk_content(content_type: &str) -> bool {
    let ct = content_type.to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or("").trim();
    if BULK_ESSENCES.contains(&essence) {
        return true;
    }
    essence == "multipart/related"
        && BULK_ESSENCES
            .iter()
            .filter(|b| **b != "application/octet-stream")
            .any(|b| ct.contains(b))
}

/// Defense in depth, on the response of a request forwarded WITHOUT the
/// download permission: whether its body must not reach the client.
/// DICOM and archives never do; bulk bytes, gzip and PDF documents neither,
/// except for the viewer's own application files (class shell: no resource,
/// and the Orthanc Web Viewer serves its fonts as application/octet-stream).
pub fn must_cut_without_download(content_type: &str, class: Class) -> bool {
    is_dicom_content(content_type) || (class != Class::Shell && is_bulk_content(content_type))
}

#[cfg(test)]
mod tests {
    use super::{is_dicom_content, must_cut_without_download};
    use espace_ps_access::viewer::Class;

    #[test]
    fn dicom_content_types() {
        for ct in [
            "application/dicom",
            "Application/DICOM",
            "multipart/related; type=\"application/dicom\"; boundary=x",
            "application/zip",
        ] {
            assert!(is_dicom_content(ct), "{ct}");
        }
        for ct in [
            "image/jpeg",
            "application/dicom+json",
            "text/html",
            "multipart/related; type=\"image/jpeg\"",
        ] {
            assert!(!is_dicom_content(ct), "{ct}");
        }
    }

    #[test]
    fn bulk_documents_and_gzip_are_cut_without_download() {
        for class in [Class::Raw, Class::Rendered, Class::Search] {
            for ct in [
                "application/octet-stream",
                "Application/Octet-Stream; charset=binary",
                "application/gzip",
                "application/x-gzip",
                "application/pdf",
                "application/zip",
                "application/dicom",
                "multipart/related; type=\"application/pdf\"; boundary=x",
                "multipart/related; type=\"application/dicom\"; boundary=x",
            ] {
                assert!(must_cut_without_download(ct, class), "{ct} on {class}");
            }
            for ct in [
                "image/jpeg",
                "image/png",
                "application/json",
                "application/dicom+json",
                "text/html",
                // DICOMweb frames for display
                "multipart/related; type=\"application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1\"; boundary=x",
            ] {
                assert!(!must_cut_without_download(ct, class), "{ct} on {class}");
            }
        }
        // The viewer application's own files: its fonts are octet-stream.
        assert!(!must_cut_without_download(
            "application/octet-stream",
            Class::Shell
        ));
        assert!(must_cut_without_download("application/zip", Class::Shell));
        assert!(must_cut_without_download("application/dicom", Class::Shell));
    }
}
