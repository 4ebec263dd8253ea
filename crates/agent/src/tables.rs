//! Bookkeeping for unwind tables in the kernel: table slots (one per
//! object file) and a budget on the rows they hold together.

#[derive(Debug)]
pub struct TableBudget {
    max_tables: u32,
    max_rows: u64,
    rows_in_use: u64,
    /// Released slots, reused first.
    free: Vec<u32>,
    next: u32,
}

impl TableBudget {
    pub fn new(max_tables: u32, max_rows: u64) -> Self {
        TableBudget {
            max_tables,
            max_rows,
            rows_in_use: 0,
            free: Vec::new(),
            next: 0,
        }
    }

    pub fn rows_in_use(&self) -> u64 {
        self.rows_in_use
    }

    /// A slot for a table of `rows` rows, if both a slot and room remain.
    pub fn alloc(&mut self, rows: u32) -> Option<u32> {
        if self.rows_in_use + rows as u64 > self.max_rows {
            return None;
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None if self.next < self.max_tables => {
                self.next += 1;
                self.next - 1
            }
            None => return None,
        };
        self.rows_in_use += rows as u64;
        Some(slot)
    }

    pub fn release(&mut self, slot: u32, rows: u32) {
        self.rows_in_use = self.rows_in_use.saturating_sub(rows as u64);
        self.free.push(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_and_rows_are_bounded_and_reused() {
        let mut b = TableBudget::new(2, 100);
        let a = b.alloc(60).unwrap();
        assert!(b.alloc(50).is_none(), "row budget");
        let c = b.alloc(40).unwrap();
        assert_ne!(a, c);
        b.release(a, 60);
        assert_eq!(b.rows_in_use(), 40);
        assert_eq!(b.alloc(10), Some(a));
        assert!(b.alloc(1).is_none(), "slots");
    }
}
