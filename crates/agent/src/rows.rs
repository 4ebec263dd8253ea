//! Space management for the BPF unwind-row array: first-fit allocation of
//! contiguous ranges, with neighbouring free ranges merged on release.

/// A contiguous range of rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowRange {
    pub start: u32,
    pub len: u32,
}

#[derive(Debug)]
pub struct RowAllocator {
    capacity: u32,
    /// Sorted, non-overlapping, non-adjacent free ranges.
    free: Vec<RowRange>,
}

impl RowAllocator {
    pub fn new(capacity: u32) -> Self {
        RowAllocator {
            capacity,
            free: if capacity > 0 {
                vec![RowRange {
                    start: 0,
                    len: capacity,
                }]
            } else {
                Vec::new()
            },
        }
    }

    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    pub fn free_rows(&self) -> u32 {
        self.free.iter().map(|r| r.len).sum()
    }

    pub fn alloc(&mut self, len: u32) -> Option<RowRange> {
        if len == 0 {
            return Some(RowRange { start: 0, len: 0 });
        }
        let i = self.free.iter().position(|r| r.len >= len)?;
        let slot = &mut self.free[i];
        let got = RowRange {
            start: slot.start,
            len,
        };
        slot.start += len;
        slot.len -= len;
        if slot.len == 0 {
            self.free.remove(i);
        }
        Some(got)
    }

    pub fn release(&mut self, range: RowRange) {
        if range.len == 0 {
            return;
        }
        let i = self.free.partition_point(|r| r.start < range.start);
        self.free.insert(i, range);
        // Merge with the next, then with the previous.
        if i + 1 < self.free.len()
            && self.free[i].start + self.free[i].len == self.free[i + 1].start
        {
            self.free[i].len += self.free[i + 1].len;
            self.free.remove(i + 1);
        }
        if i > 0 && self.free[i - 1].start + self.free[i - 1].len == self.free[i].start {
            self.free[i - 1].len += self.free[i].len;
            self.free.remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_fit_and_merge() {
        let mut a = RowAllocator::new(100);
        let x = a.alloc(30).unwrap();
        let y = a.alloc(30).unwrap();
        let z = a.alloc(30).unwrap();
        assert_eq!((x.start, y.start, z.start), (0, 30, 60));
        assert!(a.alloc(11).is_none());
        a.release(y);
        assert_eq!(a.free_rows(), 40);
        // The hole is reused first.
        assert_eq!(a.alloc(20).unwrap().start, 30);
        a.release(RowRange { start: 30, len: 20 });
        a.release(x);
        a.release(z);
        assert_eq!(a.free, vec![RowRange { start: 0, len: 100 }]);
        assert_eq!(a.alloc(100).unwrap().start, 0);
    }

    #[test]
    fn zero_capacity() {
        let mut a = RowAllocator::new(0);
        assert!(a.alloc(1).is_none());
        assert_eq!(a.alloc(0).unwrap().len, 0);
    }
}
