//! The sign-in cell's client: HTTP/1.1 written as bytes on one kept-alive connection per
//! worker, answers read with `httparse`.
//!
//! On a machine where the load generator shares the cores with the gateway, every CPU cycle the
//! client spends is taken from the gateway's hashing. `reqwest` (a connection pool, header maps,
//! a body stream per request) cost ~0.3 ms of CPU per sign-in while Argon2id kept the caches
//! cold; this client does the same two requests with a fraction of that, so the sign-in figure
//! says more about the gateway and less about the instrument. The other cells keep `reqwest`.

use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

/// An answer: status, the `Set-Cookie` name=value pairs, the body.
pub struct Answer {
    pub status: u16,
    pub cookies: Vec<String>,
    pub body: Vec<u8>,
}

/// One kept-alive connection per worker, opened on first use and again after the server
/// closes it.
pub struct Wire {
    addr: SocketAddr,
    host: String,
    conns: Vec<Mutex<Option<Conn>>>,
}

struct Conn {
    stream: TcpStream,
    /// Bytes read past the end of the previous answer (none with one request in flight, kept
    /// for correctness).
    buf: Vec<u8>,
}

impl Wire {
    pub fn new(addr: SocketAddr, workers: usize) -> Self {
        Wire { addr, host: addr.to_string(), conns: (0..workers).map(|_| Mutex::new(None)).collect() }
    }

    /// `GET path` with optional cookies.
    pub async fn get(&self, worker: usize, path: &str) -> Result<Answer, String> {
        let head = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.host);
        self.exchange(worker, head.into_bytes()).await
    }

    /// `POST path` with an `application/x-www-form-urlencoded` body and cookies.
    pub async fn post_form(&self, worker: usize, path: &str, cookies: &str, body: &str) -> Result<Answer, String> {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nCookie: {cookies}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        self.exchange(worker, request.into_bytes()).await
    }

    async fn exchange(&self, worker: usize, request: Vec<u8>) -> Result<Answer, String> {
        let mut slot = self.conns[worker].lock().await;
        // A kept connection the server has since closed fails on write or on the first read;
        // such a request is sent once more on a fresh connection.
        for attempt in 0..2 {
            let fresh = slot.is_none();
            if fresh {
                let stream = TcpStream::connect(self.addr).await.map_err(|e| e.to_string())?;
                stream.set_nodelay(true).map_err(|e| e.to_string())?;
                *slot = Some(Conn { stream, buf: Vec::with_capacity(16 * 1024) });
            }
            let conn = slot.as_mut().ok_or("no connection")?;
            match conn.round_trip(&request).await {
                Ok((answer, keep)) => {
                    if !keep {
                        *slot = None;
                    }
                    return Ok(answer);
                }
                Err(Failure::Closed) if !fresh && attempt == 0 => *slot = None,
                Err(Failure::Closed) => {
                    *slot = None;
                    return Err("connection closed by the server".into());
                }
                Err(Failure::Other(e)) => {
                    *slot = None;
                    return Err(e);
                }
            }
        }
        Err("connection closed by the server".into())
    }
}

enum Failure {
    /// Closed before any byte of the answer arrived.
    Closed,
    Other(String),
}

impl Conn {
    /// Sends one request and reads its answer; also says whether the connection stays open.
    async fn round_trip(&mut self, request: &[u8]) -> Result<(Answer, bool), Failure> {
        if self.stream.write_all(request).await.is_err() {
            return Err(Failure::Closed);
        }
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&self.buf) {
                Ok(httparse::Status::Complete(head_len)) => {
                    let status = response.code.unwrap_or(0);
                    let (mut length, mut keep, mut cookies) = (None, true, Vec::new());
                    for h in response.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-length") {
                            length = std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse::<usize>().ok());
                        } else if h.name.eq_ignore_ascii_case("set-cookie") {
                            let v = String::from_utf8_lossy(h.value);
                            cookies.push(v.split(';').next().unwrap_or("").to_string());
                        } else if h.name.eq_ignore_ascii_case("connection") {
                            keep = !h.value.eq_ignore_ascii_case(b"close");
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            return Err(Failure::Other("chunked answers are not read by this client".into()));
                        }
                    }
                    let length = length.unwrap_or(0);
                    while self.buf.len() < head_len + length {
                        self.fill().await.map_err(|_| Failure::Other("closed in the middle of an answer".into()))?;
                    }
                    let body = self.buf[head_len..head_len + length].to_vec();
                    self.buf.drain(..head_len + length);
                    return Ok((Answer { status, cookies, body }, keep));
                }
                Ok(httparse::Status::Partial) => {
                    let before = self.buf.len();
                    match self.fill().await {
                        Ok(()) => {}
                        Err(()) if before == 0 => return Err(Failure::Closed),
                        Err(()) => return Err(Failure::Other("closed in the middle of an answer".into())),
                    }
                }
                Err(e) => return Err(Failure::Other(format!("unreadable answer: {e}"))),
            }
        }
    }

    /// Reads more bytes; `Err` when the connection is closed or failed.
    async fn fill(&mut self) -> Result<(), ()> {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => Err(()),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
        }
    }
}
