//! Response builders with the security headers set in one place, for the
//! servers of espace-ps that build their own responses: the proxy's pages
//! (`espace_ps::web`) and the dev identity provider. Each server names its
//! headers once, as a [`SecurityHeaders`] value; every response it builds
//! through that value carries them, plus the cache policy it asks for
//! ([`Cache::NoStore`] for the builders).

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};

pub const HTML: &str = "text/html; charset=utf-8";
pub const JSON: &str = "application/json";
pub const TEXT: &str = "text/plain; charset=utf-8";

/// Which cache policy a response gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cache {
    /// Anything personal: never stored.
    NoStore,
    /// Static assets that carry no personal data.
    Public,
    /// Static, but checked with the server every time.
    Revalidate,
}

impl Cache {
    /// The `Cache-Control` value.
    pub const fn header_value(self) -> &'static str {
        match self {
            Cache::NoStore => "no-store",
            Cache::Public => "public, max-age=3600",
            Cache::Revalidate => "no-cache",
        }
    }
}

/// The headers (lower-case names) a server puts on every response it
/// builds, besides `Cache-Control`.
#[derive(Debug, Clone, Copy)]
pub struct SecurityHeaders(pub &'static [(&'static str, &'static str)]);

impl SecurityHeaders {
    /// Sets the headers and the cache policy, replacing earlier values.
    pub fn apply(&self, headers: &mut HeaderMap, cache: Cache) {
        for (name, value) in self.0 {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(cache.header_value()),
        );
    }

    /// A `no-store` response of `content_type` with our headers.
    pub fn response(
        &self,
        status: StatusCode,
        content_type: &'static str,
        body: impl Into<Bytes>,
    ) -> Response<Bytes> {
        let mut r = Response::new(body.into());
        *r.status_mut() = status;
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        self.apply(r.headers_mut(), Cache::NoStore);
        r
    }

    pub fn html(&self, status: StatusCode, body: impl Into<Bytes>) -> Response<Bytes> {
        self.response(status, HTML, body)
    }

    /// A JSON answer from a view struct or a `serde_json::Value`.
    pub fn json<T: serde::Serialize + ?Sized>(
        &self,
        status: StatusCode,
        body: &T,
    ) -> Response<Bytes> {
        // Views have string keys only: serializing them cannot fail.
        self.response(status, JSON, serde_json::to_vec(body).unwrap_or_default())
    }

    pub fn text(&self, status: StatusCode, body: impl Into<Bytes>) -> Response<Bytes> {
        self.response(status, TEXT, body)
    }

    /// A `303 See Other` to `location` (a relative path or an absolute URL
    /// the caller built; a value that is not a header value is left out).
    pub fn redirect(&self, location: &str) -> Response<Bytes> {
        let mut r = Response::new(Bytes::new());
        *r.status_mut() = StatusCode::SEE_OTHER;
        if let Ok(v) = HeaderValue::from_str(location) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        self.apply(r.headers_mut(), Cache::NoStore);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE: SecurityHeaders = SecurityHeaders(&[
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
    ]);

    fn names(r: &Response<Bytes>) -> Vec<(String, String)> {
        r.headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect()
    }

    #[test]
    fn every_builder_sets_the_headers_and_no_store() {
        let want = |ct: Option<&str>| {
            let mut w: Vec<(String, String)> = Vec::new();
            if let Some(ct) = ct {
                w.push(("content-type".into(), ct.into()));
            }
            w.push(("x-content-type-options".into(), "nosniff".into()));
            w.push(("referrer-policy".into(), "same-origin".into()));
            w.push(("cache-control".into(), "no-store".into()));
            w
        };
        let r = SITE.html(StatusCode::OK, "<p>x</p>");
        assert_eq!(names(&r), want(Some(HTML)));
        assert_eq!(r.body().as_ref(), b"<p>x</p>");
        let r = SITE.json(StatusCode::NOT_FOUND, &serde_json::json!({"a": 1}));
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(names(&r), want(Some(JSON)));
        assert_eq!(r.body().as_ref(), br#"{"a":1}"#);
        let r = SITE.text(StatusCode::FORBIDDEN, "non");
        assert_eq!(names(&r), want(Some(TEXT)));
        let r = SITE.redirect("/x?y=1");
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let mut w = vec![("location".to_owned(), "/x?y=1".to_owned())];
        w.extend(want(None));
        assert_eq!(names(&r), w);
        // Not a header value: no Location at all.
        assert!(SITE.redirect("/a\nb").headers().get("location").is_none());
    }

    #[test]
    fn cache_policies() {
        let mut h = HeaderMap::new();
        for (cache, value) in [
            (Cache::NoStore, "no-store"),
            (Cache::Public, "public, max-age=3600"),
            (Cache::Revalidate, "no-cache"),
        ] {
            SITE.apply(&mut h, cache);
            assert_eq!(h["cache-control"], value);
            assert_eq!(h.len(), 3);
        }
    }
}
