//! Structural limits of a JSON body, checked as the body arrives, chunk by chunk: nesting depth,
//! elements per array, members per object, bytes per string, total size. One pass, constant work
//! per byte, memory proportional to the depth (which is capped), so a hostile body is refused
//! before it is buffered whole. Well-formedness is left to the full parse at the end; this scan
//! only needs to know where strings start and end.

/// The limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JsonLimits {
    /// Deepest nesting of arrays and objects.
    pub depth: usize,
    /// Most elements in one array.
    pub array: usize,
    /// Most members in one object.
    pub keys: usize,
    /// Longest string (key or value), in bytes as sent (escapes counted as written).
    pub string: usize,
}

impl Default for JsonLimits {
    fn default() -> Self {
        JsonLimits {
            depth: 16,
            array: 1000,
            keys: 200,
            string: 8 * 1024,
        }
    }
}

/// Which limit a body broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonViolation {
    /// Nested deeper than allowed.
    Depth(usize),
    /// An array with more elements than allowed.
    Array(usize),
    /// An object with more members than allowed.
    Keys(usize),
    /// A string longer than allowed.
    String(usize),
}

impl JsonViolation {
    /// Words for a legitimate client.
    pub fn reason(&self) -> String {
        match self {
            JsonViolation::Depth(n) => format!("nests deeper than {n} levels"),
            JsonViolation::Array(n) => format!("has an array of more than {n} elements"),
            JsonViolation::Keys(n) => format!("has an object of more than {n} members"),
            JsonViolation::String(n) => format!("has a string of more than {n} bytes"),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Frame {
    array: bool,
    count: usize,
    empty: bool,
}

/// The scanner's state between chunks.
#[derive(Clone, Debug)]
pub struct JsonScan {
    limits: JsonLimits,
    stack: Vec<Frame>,
    in_string: bool,
    escape: bool,
    string_len: usize,
}

impl JsonScan {
    /// A scanner for these limits.
    pub fn new(limits: JsonLimits) -> Self {
        JsonScan {
            limits,
            stack: Vec::new(),
            in_string: false,
            escape: false,
            string_len: 0,
        }
    }

    /// Feeds the next chunk of the body.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), JsonViolation> {
        for &b in chunk {
            if self.in_string {
                if self.escape {
                    self.escape = false;
                } else if b == b'\\' {
                    self.escape = true;
                } else if b == b'"' {
                    self.in_string = false;
                    continue;
                }
                self.string_len += 1;
                if self.string_len > self.limits.string {
                    return Err(JsonViolation::String(self.limits.string));
                }
                continue;
            }
            match b {
                b' ' | b'\t' | b'\n' | b'\r' => continue,
                _ => {}
            }
            // Anything but a closer or a separator starts an element of an array.
            if !matches!(b, b']' | b'}' | b',' | b':') {
                if let Some(top) = self.stack.last_mut() {
                    if top.array && top.empty {
                        top.empty = false;
                        top.count = 1;
                    }
                }
            }
            match b {
                b'"' => {
                    self.in_string = true;
                    self.string_len = 0;
                }
                b'[' | b'{' => {
                    if self.stack.len() >= self.limits.depth {
                        return Err(JsonViolation::Depth(self.limits.depth));
                    }
                    self.stack.push(Frame {
                        array: b == b'[',
                        count: 0,
                        empty: true,
                    });
                }
                b']' | b'}' => {
                    self.stack.pop();
                }
                b',' => {
                    if let Some(top) = self.stack.last_mut() {
                        if top.array {
                            top.count += 1;
                            if top.count > self.limits.array {
                                return Err(JsonViolation::Array(self.limits.array));
                            }
                        }
                    }
                }
                b':' => {
                    if let Some(top) = self.stack.last_mut() {
                        if !top.array {
                            top.count += 1;
                            if top.count > self.limits.keys {
                                return Err(JsonViolation::Keys(self.limits.keys));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(limits: JsonLimits, body: &str, chunk: usize) -> Result<(), JsonViolation> {
        let mut s = JsonScan::new(limits);
        for c in body.as_bytes().chunks(chunk.max(1)) {
            s.feed(c)?;
        }
        Ok(())
    }

    #[test]
    fn limits_hold_whatever_the_chunking() {
        let l = JsonLimits {
            depth: 3,
            array: 3,
            keys: 2,
            string: 5,
        };
        for chunk in [1, 2, 7, 1000] {
            assert_eq!(scan(l, r#"{"a":[1,2,3],"b":"hello"}"#, chunk), Ok(()));
            assert_eq!(
                scan(l, r#"{"a":[1,2,3,4]}"#, chunk),
                Err(JsonViolation::Array(3))
            );
            assert_eq!(
                scan(l, r#"{"a":1,"b":2,"c":3}"#, chunk),
                Err(JsonViolation::Keys(2))
            );
            assert_eq!(
                scan(l, r#"{"a":"toolong"}"#, chunk),
                Err(JsonViolation::String(5))
            );
            assert_eq!(scan(l, "[[[[1]]]]", chunk), Err(JsonViolation::Depth(3)));
            // Brackets, commas and colons inside strings do not count.
            assert_eq!(scan(l, r#"{"a":"[,:{"}"#, chunk), Ok(()));
            // Escaped quotes do not end a string.
            assert_eq!(
                scan(l, r#"{"a":"\"\"\""}"#, chunk),
                Err(JsonViolation::String(5))
            );
            assert_eq!(scan(l, "[]", chunk), Ok(()));
        }
    }

    #[test]
    fn a_deep_attack_is_refused_at_the_limit_not_at_the_end() {
        let mut s = JsonScan::new(JsonLimits::default());
        let body = "[".repeat(1_000_000);
        assert_eq!(s.feed(body.as_bytes()), Err(JsonViolation::Depth(16)));
    }
}
