//! The protobuf wire format, read by hand: the one reader of the messages the core decodes
//! (`google.protobuf.Struct` in `structpb.rs`, the rate-limit service's answers in `global.rs`).
//! Lengths are checked against the remaining input; field number 0, which no message has, is an
//! error.

/// A message's bytes, read one field at a time.
pub(crate) struct Wire<'a> {
    b: &'a [u8],
}

/// One field's value, by wire type.
pub(crate) enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32,
}

impl<'a> Wire<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Wire { b }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for i in 0..10 {
            let (&byte, rest) = self.b.split_first().ok_or("truncated varint")?;
            self.b = rest;
            v |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.b.len() {
            return Err("length runs past the end of the message".into());
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }

    /// The next field as (number, value), or `None` at the end.
    pub(crate) fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, String> {
        if self.b.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        if key >> 3 == 0 {
            return Err("field number 0".into());
        }
        let field = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => {
                let raw = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(raw);
                Field::Fixed64(u64::from_le_bytes(a))
            }
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| "length too large")?;
                Field::Bytes(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Field::Fixed32
            }
            w => return Err(format!("unsupported wire type {w}")),
        };
        Ok(Some((key >> 3, field)))
    }
}
