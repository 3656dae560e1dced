//! Serves the dev identity provider (`espace-ps-devidp`) on a Pingora
//! listener, for `espace-ps-demo dev-idp` and `espace-ps-demo demo`.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use espace_ps_devidp::DevIdp;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

/// The most the dev IdP reads of a request body.
const MAX_BODY: usize = 64 * 1024;

pub struct DevIdpApp(pub Arc<DevIdp>);

#[async_trait]
impl ServeHttp for DevIdpApp {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let h = session.req_header();
        let mut builder = http::Request::builder()
            .method(h.method.clone())
            .uri(h.uri.clone());
        for (k, v) in h.headers.iter() {
            builder = builder.header(k, v);
        }
        let mut body = BytesMut::new();
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_BODY => {
                    body.extend_from_slice(&chunk)
                }
                Ok(None) => break,
                _ => return plain(400, "bad request body"),
            }
        }
        let Ok(req) = builder.body(Bytes::from(body)) else {
            return plain(400, "bad request");
        };
        let resp = self.0.handle(req).await;
        let (mut parts, body) = resp.into_parts();
        parts
            .headers
            .insert(http::header::CONTENT_LENGTH, body.len().into());
        http::Response::from_parts(parts, body.to_vec())
    }
}

fn plain(status: u16, msg: &'static str) -> http::Response<Vec<u8>> {
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_LENGTH, msg.len())
        .body(msg.as_bytes().to_vec())
        .expect("static response")
}
