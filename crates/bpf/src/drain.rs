//! Draining BPF hash maps in batches.
//!
//! libbpf-rs's batch iterator allocates two vectors per element and stops
//! silently on errors; a profiler drains thousands of entries a second and
//! must report every failure, so this drainer reuses its buffers and returns
//! errors, growing its batch when a hash bucket holds more entries than fit.

use std::os::fd::{AsRawFd, BorrowedFd};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum DrainError {
    #[error("batch lookup-and-delete failed: {0}")]
    Os(std::io::Error),
    #[error("a hash bucket holds more than {0} entries")]
    BucketTooLarge(u32),
}

/// Reusable buffers for `bpf_map_lookup_and_delete_batch` (and its
/// key-by-key equivalent, kept for comparison in benchmarks).
pub struct BatchDrainer {
    key_size: usize,
    value_size: usize,
    batch: u32,
    keys: Vec<u8>,
    values: Vec<u8>,
}

const MAX_BATCH: u32 = 1 << 16;

impl BatchDrainer {
    pub fn new(key_size: usize, value_size: usize, batch: u32) -> Self {
        let batch = batch.clamp(1, MAX_BATCH);
        BatchDrainer {
            key_size,
            value_size,
            batch,
            keys: vec![0; key_size * batch as usize],
            values: vec![0; value_size * batch as usize],
        }
    }

    fn grow(&mut self) -> Result<(), DrainError> {
        if self.batch >= MAX_BATCH {
            return Err(DrainError::BucketTooLarge(self.batch));
        }
        self.batch *= 2;
        self.keys.resize(self.key_size * self.batch as usize, 0);
        self.values.resize(self.value_size * self.batch as usize, 0);
        Ok(())
    }

    /// Moves every entry out of the map, calling `each(key, value)`.
    /// Returns how many entries were drained.
    pub fn drain(
        &mut self,
        map: BorrowedFd<'_>,
        mut each: impl FnMut(&[u8], &[u8]),
    ) -> Result<usize, DrainError> {
        let opts = libbpf_sys::bpf_map_batch_opts {
            sz: std::mem::size_of::<libbpf_sys::bpf_map_batch_opts>() as _,
            ..Default::default()
        };
        // Hash maps use a bucket index as the batch token.
        let mut in_token = [0u8; 8];
        let mut out_token = [0u8; 8];
        let mut first = true;
        let mut total = 0usize;
        loop {
            let mut count = self.batch;
            // SAFETY: buffers hold `batch` keys and values of the map's sizes;
            // tokens are larger than the kernel's u32 bucket index.
            let ret = unsafe {
                libbpf_sys::bpf_map_lookup_and_delete_batch(
                    map.as_raw_fd(),
                    if first {
                        std::ptr::null_mut()
                    } else {
                        in_token.as_mut_ptr().cast()
                    },
                    out_token.as_mut_ptr().cast(),
                    self.keys.as_mut_ptr().cast(),
                    self.values.as_mut_ptr().cast(),
                    &mut count,
                    &opts,
                )
            };
            let err = if ret < 0 {
                Some(std::io::Error::from_raw_os_error(-ret))
            } else {
                None
            };
            let done = match &err {
                None => false,
                Some(e) if e.raw_os_error() == Some(libc::ENOENT) => true,
                Some(e) if e.raw_os_error() == Some(libc::ENOSPC) && count == 0 => {
                    self.grow()?;
                    continue;
                }
                Some(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Some(e) => {
                    return Err(DrainError::Os(std::io::Error::from_raw_os_error(
                        e.raw_os_error().unwrap_or(libc::EIO),
                    )))
                }
            };
            let n = (count as usize).min(self.batch as usize);
            for i in 0..n {
                each(
                    &self.keys[i * self.key_size..(i + 1) * self.key_size],
                    &self.values[i * self.value_size..(i + 1) * self.value_size],
                );
            }
            total += n;
            if done {
                return Ok(total);
            }
            in_token = out_token;
            first = false;
        }
    }

    /// The same as [`drain`](Self::drain), key by key: walk the keys with
    /// `get_next_key`, then look up and delete each. Only for measuring the
    /// difference.
    pub fn drain_key_by_key(
        &mut self,
        map: BorrowedFd<'_>,
        mut each: impl FnMut(&[u8], &[u8]),
    ) -> Result<usize, DrainError> {
        let mut keys: Vec<u8> = Vec::new();
        let mut key = vec![0u8; self.key_size];
        let mut first = true;
        loop {
            let mut next = vec![0u8; self.key_size];
            // SAFETY: key buffers have the map's key size; NULL asks for the first key.
            let ret = unsafe {
                libbpf_sys::bpf_map_get_next_key(
                    map.as_raw_fd(),
                    if first {
                        std::ptr::null()
                    } else {
                        key.as_ptr().cast()
                    },
                    next.as_mut_ptr().cast(),
                )
            };
            if ret < 0 {
                if -ret == libc::ENOENT {
                    break;
                }
                return Err(DrainError::Os(std::io::Error::from_raw_os_error(-ret)));
            }
            keys.extend_from_slice(&next);
            key = next;
            first = false;
        }
        let mut value = vec![0u8; self.value_size];
        let mut total = 0;
        for k in keys.chunks(self.key_size) {
            // SAFETY: buffers have the map's key and value sizes.
            let ret = unsafe {
                libbpf_sys::bpf_map_lookup_and_delete_elem(
                    map.as_raw_fd(),
                    k.as_ptr().cast(),
                    value.as_mut_ptr().cast(),
                )
            };
            if ret < 0 {
                if -ret == libc::ENOENT {
                    continue;
                }
                return Err(DrainError::Os(std::io::Error::from_raw_os_error(-ret)));
            }
            each(k, &value);
            total += 1;
        }
        Ok(total)
    }
}
