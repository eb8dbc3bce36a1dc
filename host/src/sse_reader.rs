//! Reading a Server-Sent Events response frame by frame (model providers' streams, and our own in the CLI).

use futures::StreamExt;

/// One SSE frame: the `event:` name and `id:` (if any) and the joined `data:` lines.
pub struct SseFrame {
    pub event: Option<String>,
    pub id: Option<String>,
    pub data: String,
}

pub struct SseReader {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: Vec<u8>,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> Self {
        SseReader { body: response.bytes_stream().boxed(), buf: Vec::new() }
    }

    /// The next frame; `Ok(None)` at the end of the body.
    pub async fn next(&mut self) -> Result<Option<SseFrame>, reqwest::Error> {
        loop {
            if let Some(end) = find_frame_end(&self.buf) {
                let raw: Vec<u8> = self.buf.drain(..end.0 + end.1).collect();
                let text = String::from_utf8_lossy(&raw[..end.0]);
                let mut frame = SseFrame { event: None, id: None, data: String::new() };
                let mut first = true;
                for line in text.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        frame.event = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("id:") {
                        frame.id = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        if !first {
                            frame.data.push('\n');
                        }
                        frame.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                        first = false;
                    }
                }
                if frame.event.is_none() && first {
                    continue; // comment or keep-alive
                }
                return Ok(Some(frame));
            }
            match self.body.next().await {
                Some(chunk) => self.buf.extend_from_slice(&chunk?),
                None => return Ok(None),
            }
        }
    }
}

/// Position and length of the first blank-line separator (`\n\n` or `\r\n\r\n`).
fn find_frame_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|p| (p, 2));
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| (p, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 < b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}
