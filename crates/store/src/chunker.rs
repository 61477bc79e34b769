//! Cutting a stream into chunks for deduplication.
//!
//! Tensor data (regions reported by [`crate::formats::RegionScanner`]) is cut exactly at
//! the tensor's first and last byte, and inside into pieces of [`TENSOR_PIECE_BYTES`]
//! counted from the tensor's start — so a tensor that is unchanged between two versions
//! of a model yields the same chunks wherever it sits in the file. Everything else
//! (protobuf framing, the graph, small tensors, non-model blobs) is cut by FastCDC
//! (content-defined), so an insertion only disturbs the chunks around it. Memory is
//! bounded by one chunk plus one input buffer.

use std::collections::VecDeque;

/// Largest chunk cut inside a tensor.
pub const TENSOR_PIECE_BYTES: usize = 4 << 20;
/// FastCDC minimum chunk size.
pub const CDC_MIN_BYTES: usize = 64 << 10;
/// FastCDC target average chunk size.
pub const CDC_AVG_BYTES: usize = 256 << 10;
/// FastCDC maximum chunk size.
pub const CDC_MAX_BYTES: usize = 1 << 20;

/// Streaming chunker; see the module docs.
#[derive(Debug, Default)]
pub struct Chunker {
    pos: u64,
    pending: Vec<u8>,
    region_end: Option<u64>,
}

impl Chunker {
    /// Consumes `data` (the next bytes of the stream), calling `emit` for every finished
    /// chunk. `regions` are tensor ranges in stream order; those that start at or after
    /// the current position are honoured and consumed.
    pub fn feed<E>(
        &mut self,
        mut data: &[u8],
        regions: &mut VecDeque<(u64, u64)>,
        emit: &mut dyn FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        while !data.is_empty() {
            if let Some(end) = self.region_end {
                let room = TENSOR_PIECE_BYTES - self.pending.len();
                let take = ((end - self.pos) as usize).min(data.len()).min(room);
                self.pending.extend_from_slice(&data[..take]);
                self.pos += take as u64;
                data = &data[take..];
                if self.pending.len() == TENSOR_PIECE_BYTES || self.pos == end {
                    emit(&self.pending)?;
                    self.pending.clear();
                }
                if self.pos == end {
                    self.region_end = None;
                }
                continue;
            }
            while regions.front().is_some_and(|&(s, e)| s < self.pos || e <= s) {
                regions.pop_front();
            }
            let next = regions.front().map_or(u64::MAX, |r| r.0);
            let take = ((next - self.pos).min(data.len() as u64)) as usize;
            self.pending.extend_from_slice(&data[..take]);
            self.pos += take as u64;
            data = &data[take..];
            let at_region = self.pos == next;
            self.drain_cdc(at_region, emit)?;
            if at_region {
                let (_, end) = regions.pop_front().expect("front exists");
                self.region_end = Some(end);
            }
        }
        Ok(())
    }

    /// Emits whatever is pending.
    pub fn finish<E>(mut self, emit: &mut dyn FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        if self.region_end.is_some() {
            if !self.pending.is_empty() {
                emit(&self.pending)?;
            }
            return Ok(());
        }
        self.drain_cdc(true, emit)
    }

    /// Cuts pending gap bytes by FastCDC; keeps an undecided tail unless `all`.
    fn drain_cdc<E>(&mut self, all: bool, emit: &mut dyn FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        let mut start = 0usize;
        loop {
            let rest = self.pending.len() - start;
            if rest == 0 || (!all && rest < CDC_MAX_BYTES) {
                break;
            }
            let cdc = fastcdc::v2020::FastCDC::new(&self.pending[start..], CDC_MIN_BYTES, CDC_AVG_BYTES, CDC_MAX_BYTES);
            let (_, cut) = cdc.cut(0, rest);
            emit(&self.pending[start..start + cut])?;
            start += cut;
        }
        self.pending.drain(..start);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(data: &[u8], regions: &[(u64, u64)], piece: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut c = Chunker::default();
        let mut r: VecDeque<_> = regions.iter().copied().collect();
        let mut emit = |b: &[u8]| -> Result<(), ()> {
            out.push(b.to_vec());
            Ok(())
        };
        for p in data.chunks(piece) {
            c.feed(p, &mut r, &mut emit).unwrap();
        }
        c.finish(&mut emit).unwrap();
        out
    }

    #[test]
    fn reassembles_and_cuts_at_regions() {
        let data: Vec<u8> = (0..5_000_000u64).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let regions = [(1_000_000, 1_100_000), (2_000_000, 4_500_000)];
        let a = chunks(&data, &regions, 262_144);
        let b = chunks(&data, &regions, 7777);
        assert_eq!(a, b, "independent of read sizes");
        assert_eq!(a.concat(), data);
        let mut off = 0u64;
        let mut starts = vec![];
        for c in &a {
            starts.push(off);
            off += c.len() as u64;
            assert!(c.len() <= TENSOR_PIECE_BYTES);
        }
        for (s, e) in regions {
            assert!(starts.contains(&s) && (starts.contains(&e) || e == data.len() as u64));
        }
    }
}
