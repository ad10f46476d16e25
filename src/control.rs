//! Control endpoint: `/metrics` (Prometheus text), `/health`, `/ready`, and
//! `POST /reload` when `server.http_reload` is on. Control path only: a
//! deliberately small HTTP/1.1 responder (one request per connection, bounded
//! head, deadline) so the daemon needs no web framework for three URLs.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// What the endpoint serves; implemented by the app.
pub trait Control: Send + Sync + 'static {
    /// The metrics text.
    fn metrics(&self) -> String;
    /// True once config is loaded and an upstream answered.
    fn ready(&self) -> bool;
    /// `Some(result)` when HTTP reload is enabled.
    fn reload(&self) -> Option<Result<(), String>>;
}

/// Largest request head read; anything longer is refused.
const MAX_HEAD: usize = 8 * 1024;
/// A client gets this long to send its request.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);

/// Serves until `stop`.
pub async fn serve(listener: TcpListener, control: Arc<dyn Control>, stop: CancellationToken) {
    loop {
        let stream = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => { tracing::debug!(error = %e, "control accept"); continue; }
            },
        };
        let control = control.clone();
        tokio::spawn(async move {
            if let Err(e) = tokio::time::timeout(REQUEST_DEADLINE, one(stream, &*control)).await {
                tracing::debug!(error = %e, "control request timed out");
            }
        });
    }
}

async fn one(mut stream: TcpStream, control: &dyn Control) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_HEAD {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "too large\n",
            )
            .await;
        }
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let path = path.split(|&b| b == b'?').next().unwrap_or_default();
    match (method, path) {
        (b"GET", b"/metrics") => {
            respond(
                &mut stream,
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                &control.metrics(),
            )
            .await
        }
        (b"GET", b"/health") => respond(&mut stream, "200 OK", "text/plain", "ok\n").await,
        (b"GET", b"/ready") if control.ready() => {
            respond(&mut stream, "200 OK", "text/plain", "ready\n").await
        }
        (b"GET", b"/ready") => {
            respond(
                &mut stream,
                "503 Service Unavailable",
                "text/plain",
                "no upstream answered yet\n",
            )
            .await
        }
        (b"POST", b"/reload") => match control.reload() {
            None => {
                respond(
                    &mut stream,
                    "404 Not Found",
                    "text/plain",
                    "reload over HTTP is off (server.http_reload)\n",
                )
                .await
            }
            Some(Ok(())) => respond(&mut stream, "200 OK", "text/plain", "reloaded\n").await,
            Some(Err(e)) => {
                respond(
                    &mut stream,
                    "400 Bad Request",
                    "text/plain",
                    &format!("{e}\n"),
                )
                .await
            }
        },
        (_, b"/metrics" | b"/health" | b"/ready" | b"/reload") => {
            respond(
                &mut stream,
                "405 Method Not Allowed",
                "text/plain",
                "method not allowed\n",
            )
            .await
        }
        _ => respond(&mut stream, "404 Not Found", "text/plain", "not found\n").await,
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    ctype: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
