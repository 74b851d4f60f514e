//! Compressed bytes → gzip (single- or multi-member) → decompressed chunks, on a thread of its
//! own so that inflating and CSV parsing overlap on two cores. Capped, so a decompression
//! bomb ends in a clear error after `max_decompressed_bytes`, never in unbounded work.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use async_compression::tokio::bufread::GzipDecoder;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::io::StreamReader;

use super::escape::quoted;

/// Decompressed bytes per chunk handed to the parser.
const CHUNK_BYTES: usize = 128 * 1024;
/// Chunks in flight between the tasks: bounds memory at 512 KiB whatever the file (the
/// record splitter behind keeps a few batches of its own).
const CHUNKS_IN_FLIGHT: usize = 4;
/// Read size from the source (S3 body, file, stdin).
const SOURCE_BUFFER_BYTES: usize = 64 * 1024;

/// Why a file's bytes are not a readable gzip stream.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("the file is empty (0 bytes); expected gzip-compressed CSV")]
    Empty,
    #[error(
        "not gzip data (it starts with {starts_with}): compress the CSV with gzip and name it .csv.gz"
    )]
    NotGzip { starts_with: String },
    #[error("the gzip data ends early, after {compressed_bytes} bytes: the file is truncated")]
    Truncated { compressed_bytes: u64 },
    #[error("the gzip data is corrupt near byte {compressed_bytes} ({detail})")]
    Corrupt {
        compressed_bytes: u64,
        detail: String,
    },
    #[error("data after the end of the gzip stream, near byte {compressed_bytes}, is not gzip")]
    TrailingGarbage { compressed_bytes: u64 },
    #[error(
        "more than {limit} bytes when decompressed (limits.max_decompressed_bytes); not read further"
    )]
    TooLarge { limit: u64 },
    /// Reading the source failed (a network error, not the customer's file): the file is
    /// retried later rather than reported as invalid.
    #[error("reading the file failed: {0}")]
    Source(io::Error),
}

impl DecodeError {
    /// True when the error is about the file's content, false when reading it failed.
    pub fn is_content(&self) -> bool {
        !matches!(self, DecodeError::Source(_))
    }
}

/// Byte counts of a file in flight, for progress events.
#[derive(Debug, Default)]
pub struct Progress {
    pub compressed: AtomicU64,
    pub decompressed: AtomicU64,
}

impl Progress {
    pub fn compressed(&self) -> u64 {
        self.compressed.load(Ordering::Relaxed)
    }

    pub fn decompressed(&self) -> u64 {
        self.decompressed.load(Ordering::Relaxed)
    }
}

type ChunkStream = tokio_stream::wrappers::ReceiverStream<io::Result<Bytes>>;

/// The decompressed side: an `AsyncRead` over the chunks the decoder task sends.
pub type DecodedReader = StreamReader<ChunkStream, Bytes>;

/// Starts decompressing `source` on its own task. Errors arrive through the reader as
/// `io::Error`s wrapping a [`DecodeError`]; see [`decode_error`].
pub fn spawn<R>(source: R, max_decompressed_bytes: u64) -> (DecodedReader, Arc<Progress>)
where
    R: AsyncRead + Send + Unpin + 'static,
{
    let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let progress = Arc::new(Progress::default());
    let counted = Counted {
        inner: source,
        progress: progress.clone(),
    };
    let task_progress = progress.clone();
    let decode = async move {
        if let Err(e) = pump(counted, max_decompressed_bytes, &tx, &task_progress).await {
            // The parser may have stopped already; then nobody needs the error.
            let _ = tx.send(Err(io::Error::other(e))).await;
        }
    };
    // A thread of its own, not a task: tokio's LIFO slot would keep two tasks that wake each
    // other on one worker, and inflating would not overlap with parsing.
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || runtime.block_on(decode));
    (StreamReader::new(ChunkStream::new(rx)), progress)
}

/// The [`DecodeError`] inside an error read from a [`DecodedReader`], if it carries one.
pub fn decode_error(error: &io::Error) -> Option<&DecodeError> {
    error.get_ref()?.downcast_ref::<DecodeError>()
}

async fn pump<R: AsyncRead + Unpin>(
    source: Counted<R>,
    max_bytes: u64,
    tx: &mpsc::Sender<io::Result<Bytes>>,
    progress: &Progress,
) -> Result<(), DecodeError> {
    let mut raw = BufReader::with_capacity(SOURCE_BUFFER_BYTES, source);
    let head = raw.fill_buf().await.map_err(DecodeError::Source)?;
    if head.is_empty() {
        return Err(DecodeError::Empty);
    }
    // Only the magic bytes that have arrived are compared; the decoder checks the rest.
    if !head
        .iter()
        .zip([0x1f, 0x8b])
        .all(|(byte, magic)| *byte == magic)
    {
        let shown = String::from_utf8_lossy(&head[..head.len().min(16)]).into_owned();
        return Err(DecodeError::NotGzip {
            starts_with: quoted(&shown),
        });
    }
    let mut gzip = GzipDecoder::new(raw);
    gzip.multiple_members(true);
    let mut total = 0u64;
    loop {
        let mut chunk = BytesMut::with_capacity(CHUNK_BYTES);
        while chunk.len() < CHUNK_BYTES {
            match gzip.read_buf(&mut chunk).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Err(classify(e, total + chunk.len() as u64, progress)),
            }
        }
        if chunk.is_empty() {
            return Ok(());
        }
        total += chunk.len() as u64;
        progress.decompressed.store(total, Ordering::Relaxed);
        if total > max_bytes {
            return Err(DecodeError::TooLarge { limit: max_bytes });
        }
        if tx.send(Ok(chunk.freeze())).await.is_err() {
            return Ok(()); // The parser stopped reading (an error or the row cap).
        }
    }
}

/// Names what went wrong inside the gzip stream.
fn classify(error: io::Error, decompressed: u64, progress: &Progress) -> DecodeError {
    let compressed_bytes = progress.compressed();
    if error.get_ref().is_some_and(|e| e.is::<SourceFailed>()) {
        let inner = error
            .into_inner()
            .and_then(|e| e.downcast::<SourceFailed>().ok())
            .map(|failed| failed.0)
            .unwrap_or_else(|| io::Error::other("source read failed"));
        return DecodeError::Source(inner);
    }
    let text = error.to_string();
    match error.kind() {
        io::ErrorKind::UnexpectedEof => DecodeError::Truncated { compressed_bytes },
        _ if text.contains("Invalid gzip header") && decompressed > 0 => {
            DecodeError::TrailingGarbage { compressed_bytes }
        }
        _ => DecodeError::Corrupt {
            compressed_bytes,
            detail: text,
        },
    }
}

/// Marks an error as the source's, so it is never mistaken for a bad file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct SourceFailed(io::Error);

/// The source, counting the compressed bytes read and marking its own errors.
struct Counted<R> {
    inner: R,
    progress: Arc<Progress>,
}

impl<R: AsyncRead + Unpin> AsyncRead for Counted<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let n = (buf.filled().len() - before) as u64;
                self.progress.compressed.fetch_add(n, Ordering::Relaxed);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(io::Error::new(e.kind(), SourceFailed(e)))),
            Poll::Pending => Poll::Pending,
        }
    }
}
