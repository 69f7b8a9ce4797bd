//! The timed phase's HTTP client: one HTTP/1.1 keep-alive connection per
//! worker, driven with hyper's connection-level client. The generator
//! shares the machine with the server it measures, so its own CPU per
//! request matters: this skips what a general client does on every request
//! (pool look-up, URL handling, redirect and proxy policy) — measured at
//! about half of the generator's CPU with reqwest. A connection that fails
//! is dropped and a new one opened for the next request.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, HOST};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::error::{chain, LoadgenError};
use super::keystone::error_detail;
use super::scenario::RequestTemplate;
use super::stats::Outcome;

/// A [`RequestTemplate`] in the form the connection sends.
#[derive(Debug, Clone)]
pub struct Prepared {
    template: RequestTemplate,
    /// Path and query (origin form).
    origin: Uri,
    /// `host[:port]` for the `Host` header.
    host: HeaderValue,
    body: Bytes,
}

impl Prepared {
    /// Prepares `template` (an `http` URL with a host).
    pub fn new(template: &RequestTemplate) -> Result<Self, LoadgenError> {
        let url = &template.url;
        let invalid = |reason: &str| LoadgenError::InvalidUrl {
            url: url.to_string(),
            reason: reason.to_owned(),
        };
        let host = url.host_str().ok_or_else(|| invalid("no host"))?;
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let origin = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        Ok(Self {
            template: template.clone(),
            origin: origin.parse().map_err(|_| invalid("bad path"))?,
            host: HeaderValue::from_str(&authority).map_err(|_| invalid("bad host"))?,
            body: Bytes::from(template.body.clone().unwrap_or_default()),
        })
    }

    fn address(&self) -> Option<(String, u16)> {
        let url = &self.template.url;
        Some((url.host_str()?.to_owned(), url.port_or_known_default()?))
    }

    fn request(&self) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.template.method.clone();
        *request.uri_mut() = self.origin.clone();
        *request.headers_mut() = self.template.headers.clone();
        request.headers_mut().insert(HOST, self.host.clone());
        request
    }
}

/// A worker's connection, opened on first use and after a failure.
#[derive(Default)]
pub struct Connection {
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Connection {
    async fn open(prepared: &Prepared) -> Result<SendRequest<Full<Bytes>>, String> {
        let (host, port) = prepared.address().ok_or("no host or port")?;
        let stream = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| chain(&e))?;
        stream.set_nodelay(true).map_err(|e| chain(&e))?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| chain(&e))?;
        // Ends when the sender is dropped or the connection fails.
        tokio::spawn(connection);
        Ok(sender)
    }

    /// Sends one request and reads the whole response, within `timeout`.
    pub async fn send(&mut self, prepared: &Prepared, timeout: Duration) -> Outcome {
        match tokio::time::timeout(timeout, self.exchange(prepared)).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(error)) => {
                self.sender = None;
                Outcome::Transport(error)
            }
            Err(_) => {
                self.sender = None;
                Outcome::Transport(format!("no complete response within {timeout:?}"))
            }
        }
    }

    async fn exchange(&mut self, prepared: &Prepared) -> Result<Outcome, String> {
        let sender = match &mut self.sender {
            Some(sender) if !sender.is_closed() => sender,
            _ => self.sender.insert(Self::open(prepared).await?),
        };
        sender.ready().await.map_err(|e| chain(&e))?;
        let response = sender
            .send_request(prepared.request())
            .await
            .map_err(|e| chain(&e))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| chain(&e))?
            .to_bytes();
        Ok(if status == prepared.template.expected {
            Outcome::Success
        } else {
            Outcome::UnexpectedStatus {
                status: status.as_u16(),
                detail: error_detail(&body),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderMap;
    use reqwest::{Method, StatusCode};

    fn template(url: &str) -> RequestTemplate {
        RequestTemplate {
            method: Method::GET,
            url: url.parse().expect("url"),
            headers: HeaderMap::new(),
            body: None,
            expected: StatusCode::OK,
        }
    }

    #[test]
    fn requests_are_sent_in_origin_form_with_a_host() {
        let prepared = Prepared::new(&template("http://127.0.0.1:5000/v3/auth/tokens?nocatalog"))
            .expect("prepared");
        let request = prepared.request();
        assert_eq!(request.uri(), "/v3/auth/tokens?nocatalog");
        assert_eq!(request.headers()[HOST], "127.0.0.1:5000");
        assert_eq!(prepared.address(), Some(("127.0.0.1".to_owned(), 5000)));
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_transport_error_and_is_retried() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let prepared =
            Prepared::new(&template(&format!("http://127.0.0.1:{port}/"))).expect("prepared");
        let mut connection = Connection::default();
        for _ in 0..2 {
            let outcome = connection.send(&prepared, Duration::from_secs(5)).await;
            assert!(matches!(outcome, Outcome::Transport(_)), "{outcome:?}");
            assert!(connection.sender.is_none());
        }
    }
}
