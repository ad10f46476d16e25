//! Control endpoint: `/metrics` (Prometheus text), `/health`, `/ready`, and
//! `POST /reload` when `server.http_reload` is on. Control path only, never
//! on a query's way.
//!
//! HTTP/1.1 comes from hyper (with hyper-util's tokio glue): request parsing,
//! keep-alive for scrapers that reuse their connection, pipelining, `HEAD`,
//! chunked bodies and the error answers to malformed requests are hyper's,
//! not a hand-written parser's. What stays ours is the routing below and the
//! bounds: connections at once, the size of a request head and the time a
//! client gets to send one.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// What the endpoint serves; implemented by the app.
pub trait Control: Send + Sync + 'static {
    /// The metrics text.
    fn metrics(&self) -> String;
    /// True once config is loaded and an upstream answered, until shutdown.
    fn ready(&self) -> bool;
    /// True once shutdown began: the process still serves, but a load
    /// balancer or probe should stop counting on it.
    fn draining(&self) -> bool;
    /// `Some(result)` when HTTP reload is enabled.
    fn reload(&self) -> Option<Result<(), String>>;
}

/// Largest request head read (hyper's smallest read buffer); a longer one
/// gets 431 from hyper.
const MAX_HEAD: usize = 8 * 1024;
/// A client gets this long to send a request head, also between requests
/// on a kept-alive connection.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// Connections served at once: scrapers and probes need a handful; the rest
/// wait in the accept queue instead of costing a task each.
const MAX_CONNECTIONS: usize = 64;

const TEXT: &str = "text/plain; charset=utf-8";
/// The Prometheus text exposition format, version 0.0.4.
const METRICS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves until `stop`; connections open then finish their current request.
pub async fn serve(listener: TcpListener, control: Arc<dyn Control>, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(REQUEST_DEADLINE)
        .max_buf_size(MAX_HEAD);
    loop {
        let slot = tokio::select! {
            _ = stop.cancelled() => return,
            s = slots.clone().acquire_owned() => s.expect("the semaphore is never closed"),
        };
        let stream = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => { tracing::debug!(error = %e, "control accept"); continue; }
            },
        };
        let control = control.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let response = route(&*control, req.method(), req.uri().path());
            async move { Ok::<_, Infallible>(response) }
        });
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let stop = stop.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "control connection");
            }
        });
    }
}

/// The answer to `method path`. Query strings are ignored.
fn route(control: &dyn Control, method: &Method, path: &str) -> Response<Full<Bytes>> {
    let allowed = match path {
        "/metrics" | "/health" | "/ready" => "GET, HEAD",
        "/reload" => "POST",
        _ => return text(StatusCode::NOT_FOUND, "not found\n"),
    };
    // hyper leaves the body out of a HEAD answer and keeps its length.
    let get = method == Method::GET || method == Method::HEAD;
    match path {
        "/metrics" if get => respond(StatusCode::OK, METRICS_TEXT, control.metrics()),
        "/health" if get => text(StatusCode::OK, "ok\n"),
        "/ready" if get && control.ready() => text(StatusCode::OK, "ready\n"),
        "/ready" if get && control.draining() => {
            text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
        }
        "/ready" if get => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "no upstream answered yet\n",
        ),
        "/reload" if method == Method::POST => match control.reload() {
            None => text(
                StatusCode::NOT_FOUND,
                "reload over HTTP is off (server.http_reload)\n",
            ),
            Some(Ok(())) => text(StatusCode::OK, "reloaded\n"),
            Some(Err(e)) => respond(StatusCode::BAD_REQUEST, TEXT, format!("{e}\n")),
        },
        _ => {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allowed));
            r
        }
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    respond(status, TEXT, Bytes::from_static(body.as_bytes()))
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake {
        ready: bool,
        reload: Option<Result<(), String>>,
    }

    impl Control for Fake {
        fn metrics(&self) -> String {
            "dns64d_up 1\n".into()
        }
        fn ready(&self) -> bool {
            self.ready
        }
        fn draining(&self) -> bool {
            false
        }
        fn reload(&self) -> Option<Result<(), String>> {
            self.reload.clone()
        }
    }

    const READY: Fake = Fake {
        ready: true,
        reload: None,
    };

    #[test]
    fn unknown_paths_are_not_found() {
        assert_eq!(
            route(&READY, &Method::GET, "/admin").status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn a_wrong_method_is_refused_with_the_allowed_ones() {
        let r = route(&READY, &Method::POST, "/metrics");
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[ALLOW], "GET, HEAD");
        let r = route(&READY, &Method::GET, "/reload");
        assert_eq!(r.headers()[ALLOW], "POST");
    }

    #[test]
    fn metrics_use_the_prometheus_text_content_type() {
        let r = route(&READY, &Method::GET, "/metrics");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[CONTENT_TYPE], METRICS_TEXT);
    }

    #[test]
    fn ready_follows_the_app() {
        let not = Fake {
            ready: false,
            reload: None,
        };
        assert_eq!(
            route(&not, &Method::GET, "/ready").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            route(&READY, &Method::HEAD, "/ready").status(),
            StatusCode::OK
        );
    }

    #[test]
    fn a_failed_reload_is_a_bad_request_saying_why() {
        let bad = Fake {
            ready: true,
            reload: Some(Err("upstream.servers: empty".into())),
        };
        let r = route(&bad, &Method::POST, "/reload");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }
}
