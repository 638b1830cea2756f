//! HTTP/1 over a raw connection, for requests a normal client would not
//! send (garbage request lines, oversized heads) and for watching a
//! connection close: what every server must still answer in the one JSON
//! error shape.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A response read off a raw connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Lowercase names.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The body as the one JSON error shape, checking the content type.
    pub fn json_error(&self) -> serde_json::Value {
        assert_eq!(
            self.headers.get("content-type").map(String::as_str),
            Some("application/json"),
            "{self:?}"
        );
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Reads one response: `content-length` or chunked framing, else to EOF.
pub async fn read_response<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R) -> RawResponse {
    let mut line = String::new();
    reader.read_line(&mut line).await.unwrap();
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a status line: {line:?}"));
    let mut headers = HashMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line).await.unwrap();
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').expect("a header line");
        headers.insert(name.to_ascii_lowercase(), value.trim().to_string());
    }
    let mut body = Vec::new();
    if status < 200 {
        // Interim (`100 Continue`): no body.
    } else if let Some(len) = headers.get("content-length") {
        body.resize(len.parse().unwrap(), 0);
        reader.read_exact(&mut body).await.unwrap();
    } else if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        loop {
            line.clear();
            reader.read_line(&mut line).await.unwrap();
            let size = usize::from_str_radix(line.trim(), 16).unwrap();
            line.clear();
            if size == 0 {
                reader.read_line(&mut line).await.unwrap();
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..]).await.unwrap();
            reader.read_line(&mut line).await.unwrap();
        }
    } else {
        reader.read_to_end(&mut body).await.unwrap();
    }
    RawResponse {
        status,
        headers,
        body,
    }
}

/// Reads a response within 10 s.
pub async fn answer<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R) -> RawResponse {
    tokio::time::timeout(Duration::from_secs(10), read_response(reader))
        .await
        .expect("the server answers within 10 s")
}

/// Asserts the server closes the connection (after what it already sent).
pub async fn assert_closed<R: AsyncReadExt + Unpin>(reader: &mut R) {
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), reader.read_to_end(&mut rest))
        .await
        .expect("the server closes the connection");
    assert!(read.is_ok() && rest.is_empty(), "{read:?} {rest:?}");
}

/// Sends `request` on a new connection and reads the answer. A failed write
/// is not an error: the server may answer and stop reading before the end.
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> RawResponse {
    let (read, mut write) = TcpStream::connect(addr).await.unwrap().into_split();
    let _ = write.write_all(request).await;
    let mut reader = BufReader::new(read);
    let response = answer(&mut reader).await;
    drop(write);
    response
}
