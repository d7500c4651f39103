//! object_store's S3 client over the host's own reqwest 0.12 (rustls on ring): one HTTP and TLS
//! stack in the binary instead of object_store's built-in reqwest 0.13 with aws-lc-rs.

use http_body_util::BodyExt;
use object_store::client::{ClientOptions, HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpResponse, HttpResponseBody, HttpService};
use std::time::Duration;

/// Builds the reqwest client object_store sends its requests with.
#[derive(Debug, Default)]
pub(crate) struct ReqwestConnector;

/// Time to set up a connection to the store; requests themselves may stream for long (big
/// videos), so only reads that stall are cut off.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(60);

impl HttpConnector for ReqwestConnector {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            // The store's answers are read as they are, never followed elsewhere (a redirect
            // would carry the signed request to another host).
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| object_store::Error::Generic { store: "S3", source: Box::new(e) })?;
        Ok(HttpClient::new(Service(client)))
    }
}

#[derive(Debug)]
struct Service(reqwest::Client);

fn kind(e: &reqwest::Error) -> HttpErrorKind {
    if e.is_timeout() {
        HttpErrorKind::Timeout
    } else if e.is_connect() {
        HttpErrorKind::Connect
    } else if e.is_body() || e.is_decode() {
        HttpErrorKind::Decode
    } else if e.is_request() {
        HttpErrorKind::Request
    } else {
        HttpErrorKind::Unknown
    }
}

#[async_trait::async_trait]
impl HttpService for Service {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (parts, body) = req.into_parts();
        let url = reqwest::Url::parse(&parts.uri.to_string()).map_err(|e| HttpError::new(HttpErrorKind::Request, e))?;
        let mut r = reqwest::Request::new(parts.method, url);
        *r.headers_mut() = parts.headers;
        // Streamed as given: a multipart part is not copied into one buffer again.
        *r.body_mut() = Some(reqwest::Body::wrap(body));
        let resp = self.0.execute(r).await.map_err(|e| HttpError::new(kind(&e), e))?;
        let resp: http::Response<reqwest::Body> = resp.into();
        let (parts, body) = resp.into_parts();
        let body = HttpResponseBody::new(body.map_err(|e| HttpError::new(kind(&e), e)));
        Ok(HttpResponse::from_parts(parts, body))
    }
}
